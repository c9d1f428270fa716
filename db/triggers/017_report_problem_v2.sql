-- pgbell.report_problem_v2(kind, field, problem, missing, times)
--
-- Called by pgbell.notify_many when it had to work around a template, once
-- per field and problem and statement, however many notifications of the
-- statement had it: a placeholder without data ('missing_data', with the
-- missing keys), or an action URL that is neither a relative path nor
-- http(s) ('invalid_action_url', stored as NULL). Raises one WARNING (seen
-- by psql and in the server log) and adds `times`, the notifications
-- concerned, to the problem's count in pgbell.template_problems. Never
-- raises an error: a broken template must not abort the writer's
-- transaction. Private: only pgbell.notify_many calls it.

CREATE FUNCTION pgbell.report_problem_v2(kind text, field text, problem text, missing text[], times bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF problem = 'missing_data' THEN
        RAISE WARNING 'pgbell: template % (%): no data for %', kind, field, array_to_string(missing, ', ')
            USING DETAIL = format('%s notification(s) of this statement.', times),
                  HINT = 'The placeholder is left visible in the notification; pass the key in data or fix the template.';
    ELSE
        RAISE WARNING 'pgbell: template % (%): not a relative path or an http(s) URL; stored as NULL', kind, field
            USING DETAIL = format('%s notification(s) of this statement.', times),
                  HINT = 'An action_url must render to /path or http(s)://host/...';
    END IF;
    INSERT INTO pgbell.template_problems AS tp (kind, field, problem, missing, seen)
    VALUES (report_problem_v2.kind, report_problem_v2.field, report_problem_v2.problem,
            report_problem_v2.missing, report_problem_v2.times)
    ON CONFLICT ON CONSTRAINT template_problems_pkey
    DO UPDATE SET last_seen = now(), seen = tp.seen + excluded.seen;
END;
$$;

COMMENT ON FUNCTION pgbell.report_problem_v2(text, text, text, text[], bigint) IS
    'Reports what pgbell.notify_many worked around in a template (missing data, an unsafe action_url) for some notifications of a statement: one WARNING, and their number added to pgbell.template_problems.seen. Never raises.';
REVOKE ALL ON FUNCTION pgbell.report_problem_v2(text, text, text, text[], bigint) FROM PUBLIC;
