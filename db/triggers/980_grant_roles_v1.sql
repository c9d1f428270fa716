-- pgbell.grant_roles_v1() -> the roles that are missing
--
-- Least privilege, as GRANTs to two NOLOGIN roles that `pgbell migrate`
-- creates when its login may create roles (a DBA does otherwise):
--   pgbell_writer  may call pgbell.notify() and nothing else in the schema;
--                  grant it to every login that writes notifying rows.
--   pgbell_server  what `pgbell serve` needs: read notifications, templates,
--                  pgbell's own users (the login) and the migration version;
--                  mark notifications read or archived; read and prune
--                  state_changes; keep preferences.
-- Grants what it can, skips a role that does not exist and returns the
-- names of the missing ones. Safe to run again: migrations and every
-- `pgbell migrate` run it. Run by pgbell's owner; EXECUTE is not granted.

CREATE FUNCTION pgbell.grant_roles_v1() RETURNS text[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    missing text[] := '{}';
BEGIN
    IF to_regrole('pgbell_writer') IS NULL THEN
        missing := missing || 'pgbell_writer'::text;
    ELSE
        GRANT USAGE ON SCHEMA pgbell TO pgbell_writer;
        GRANT EXECUTE ON FUNCTION pgbell.notify(text, text[], text[], jsonb, pgbell.priority)
            TO pgbell_writer;
    END IF;
    IF to_regrole('pgbell_server') IS NULL THEN
        missing := missing || 'pgbell_server'::text;
    ELSE
        GRANT USAGE ON SCHEMA pgbell TO pgbell_server;
        GRANT SELECT ON pgbell.users, pgbell.templates TO pgbell_server;
        GRANT SELECT, UPDATE (read_at, archived_at) ON pgbell.notifications TO pgbell_server;
        GRANT SELECT, DELETE ON pgbell.state_changes TO pgbell_server;
        GRANT SELECT, INSERT, UPDATE, DELETE ON pgbell.preferences, pgbell.global_preferences
            TO pgbell_server;
        -- alembic's version table, read by `pgbell serve` to refuse an old
        -- schema; absent when the schema was built from db/ by hand
        IF to_regclass('pgbell.alembic_version') IS NOT NULL THEN
            GRANT SELECT ON pgbell.alembic_version TO pgbell_server;
        END IF;
    END IF;
    RETURN missing;
END;
$$;

COMMENT ON FUNCTION pgbell.grant_roles_v1() IS
    'Grants pgbell_writer (pgbell.notify only) and pgbell_server (what pgbell serve needs) their privileges; returns the roles that do not exist yet. Run by pgbell migrate.';
REVOKE ALL ON FUNCTION pgbell.grant_roles_v1() FROM PUBLIC;
