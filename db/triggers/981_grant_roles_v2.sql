-- pgbell.grant_roles_v2() -> the roles that are missing
--
-- Least privilege, as pgbell.grant_roles_v1() grants it, plus the set form
-- of the SQL API: pgbell_writer may call pgbell.notify() and
-- pgbell.notify_many() and nothing else in the schema. Grants what it can,
-- skips a role that does not exist and returns the names of the missing
-- ones. Safe to run again: migrations and every `pgbell migrate` run it.
-- Run by pgbell's owner; EXECUTE is not granted.

CREATE FUNCTION pgbell.grant_roles_v2() RETURNS text[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    missing text[] := pgbell.grant_roles_v1();
BEGIN
    IF to_regrole('pgbell_writer') IS NOT NULL THEN
        GRANT EXECUTE ON FUNCTION pgbell.notify_many(text, jsonb, pgbell.priority, boolean)
            TO pgbell_writer;
    END IF;
    RETURN missing;
END;
$$;

COMMENT ON FUNCTION pgbell.grant_roles_v2() IS
    'Grants pgbell_writer (pgbell.notify and pgbell.notify_many only) and pgbell_server (what pgbell serve needs) their privileges; returns the roles that do not exist yet. Run by pgbell migrate.';
REVOKE ALL ON FUNCTION pgbell.grant_roles_v2() FROM PUBLIC;
