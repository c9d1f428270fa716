-- pgbell.report_missing_v1(kind, field, missing)
--
-- Called by pgbell.notify when a template asked for data the event did not
-- carry. Raises a WARNING (seen by psql and in the server log) and counts the
-- problem in pgbell.template_problems. Never raises an error: a broken
-- template must not abort the writer's transaction.

CREATE FUNCTION pgbell.report_missing_v1(kind text, field text, missing text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE WARNING 'pgbell: template % (%): no data for %', kind, field, array_to_string(missing, ', ')
        USING HINT = 'The placeholder is left visible in the notification; pass the key in data or fix the template.';
    INSERT INTO pgbell.template_problems AS tp (kind, field, missing)
    VALUES (report_missing_v1.kind, report_missing_v1.field, report_missing_v1.missing)
    ON CONFLICT ON CONSTRAINT template_problems_pkey
    DO UPDATE SET last_seen = now(), seen = tp.seen + 1;
END;
$$;

COMMENT ON FUNCTION pgbell.report_missing_v1(text, text, text[]) IS
    'Reports a template placeholder without data: a WARNING plus a row in pgbell.template_problems. Never raises.';
