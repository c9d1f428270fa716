-- pgbell.report_problem_v1(kind, field, problem, missing)
--
-- Called by pgbell.notify when it had to work around a template: a
-- placeholder without data ('missing_data', with the missing keys), or an
-- action URL that is neither a relative path nor http(s) ('invalid_action_url',
-- stored as NULL). Raises a WARNING (seen by psql and in the server log)
-- and counts the problem in pgbell.template_problems. Never raises an
-- error: a broken template must not abort the writer's transaction.
-- Private: only pgbell.notify calls it.

CREATE FUNCTION pgbell.report_problem_v1(kind text, field text, problem text, missing text[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF problem = 'missing_data' THEN
        RAISE WARNING 'pgbell: template % (%): no data for %', kind, field, array_to_string(missing, ', ')
            USING HINT = 'The placeholder is left visible in the notification; pass the key in data or fix the template.';
    ELSE
        RAISE WARNING 'pgbell: template % (%): not a relative path or an http(s) URL; stored as NULL', kind, field
            USING HINT = 'An action_url must render to /path or http(s)://host/...';
    END IF;
    INSERT INTO pgbell.template_problems AS tp (kind, field, problem, missing)
    VALUES (report_problem_v1.kind, report_problem_v1.field, report_problem_v1.problem,
            report_problem_v1.missing)
    ON CONFLICT ON CONSTRAINT template_problems_pkey
    DO UPDATE SET last_seen = now(), seen = tp.seen + 1;
END;
$$;

COMMENT ON FUNCTION pgbell.report_problem_v1(text, text, text, text[]) IS
    'Reports what pgbell.notify worked around in a template (missing data, an unsafe action_url): a WARNING plus a row in pgbell.template_problems. Never raises.';
REVOKE ALL ON FUNCTION pgbell.report_problem_v1(text, text, text, text[]) FROM PUBLIC;
