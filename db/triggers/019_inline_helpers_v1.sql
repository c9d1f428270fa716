-- No SET clause on the two SQL functions pgbell.notify calls for every
-- notification, so that PostgreSQL inlines them into the calling statement
-- (planned once, kept with it) instead of planning their SQL again on
-- every call: a function with a SET clause is never inlined. Measured in
-- docs/benchmarks.md ("Writers' cost, all-in").
--
-- pgbell.action_url_ok_v1(url): private, pure, built-in operators only.
--
-- pgbell.role_members(role): public and the application's to replace. Only
-- the installed version is changed, and only while it is exactly what
-- 018_role_members.sql created; an application's own version is left as
-- it is, with a NOTICE. Both run inside pgbell.notify, whose search_path is
-- pinned, and the installed one names its only table with its schema. An
-- application's replacement is inlined too when it is LANGUAGE sql, STABLE,
-- one SELECT, and has no SET clause (docs/sql-api.md "Roles").

ALTER FUNCTION pgbell.action_url_ok_v1(text) RESET search_path;

DO $$
BEGIN
    IF EXISTS (
        SELECT FROM pg_proc p
         WHERE p.oid = 'pgbell.role_members(text)'::regprocedure
           AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'sql')
           AND NOT p.prosecdef
           AND p.provolatile = 's'
           AND p.proconfig = ARRAY['search_path=pg_catalog, pg_temp']
           AND btrim(p.prosrc, E' \n')
               = 'SELECT u.id::text FROM pgbell.users u WHERE role_members.role = ANY (u.roles)')
    THEN
        ALTER FUNCTION pgbell.role_members(text) RESET search_path;
    ELSE
        RAISE NOTICE 'pgbell: pgbell.role_members() is the application''s own version: left as it is'
            USING HINT = 'It is inlined into pgbell.notify, and costs less, when it is LANGUAGE sql, STABLE, one SELECT and has no SET clause.';
    END IF;
END;
$$;
