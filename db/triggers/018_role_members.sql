-- pgbell.role_members(role) -> SETOF text: the recipients a role expands to.
--
-- Public API, and the application's to replace: pgbell.notify(roles => ...)
-- sends to every id this returns. The installed version reads pgbell's own
-- users (pgbell.users.roles); an application with its own users, groups or
-- staff tables replaces it with
--     CREATE OR REPLACE FUNCTION pgbell.role_members(role text) ...
-- returning its own ids as text. No migration ever creates or replaces it
-- again, so a replaced one survives every later `pgbell migrate`.
-- It runs inside pgbell.notify, with the rights of pgbell's owner: that
-- owner needs SELECT on whatever a replacement reads.
-- Unversioned on purpose: its name is the contract.

CREATE FUNCTION pgbell.role_members(role text) RETURNS SETOF text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT u.id::text FROM pgbell.users u WHERE role_members.role = ANY (u.roles)
$$;

COMMENT ON FUNCTION pgbell.role_members(text) IS
    'Public, replaceable: the recipient ids (text) of a role, for pgbell.notify(roles => ...). Installed: pgbell''s own users with that role; replace it to read the application''s tables.';
REVOKE ALL ON FUNCTION pgbell.role_members(text) FROM PUBLIC;
