-- Demo domain (`pgbell migrate --demo`).
-- pgbell.demo_grant_roles_v1() -> the roles that are missing
--
-- What `pgbell serve` needs of the demo's tables, granted to pgbell_server:
-- read deals and payments and insert them (POST /deals, POST
-- /deals/{id}/payments). Their triggers run as pgbell's owner, so the
-- server needs nothing more to notify. Skips a role that does not exist;
-- safe to run again. Run by pgbell's owner; EXECUTE is not granted.

CREATE FUNCTION pgbell.demo_grant_roles_v1() RETURNS text[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF to_regrole('pgbell_server') IS NULL THEN
        RETURN ARRAY['pgbell_server'];
    END IF;
    GRANT SELECT, INSERT ON public.deals, public.payments TO pgbell_server;
    GRANT USAGE ON SEQUENCE public.deals_id_seq, public.payments_id_seq TO pgbell_server;
    RETURN '{}';
END;
$$;

COMMENT ON FUNCTION pgbell.demo_grant_roles_v1() IS
    'Grants pgbell_server what the demo''s REST calls need on public.deals and public.payments; returns the roles that do not exist yet. Run by pgbell migrate --demo.';
REVOKE ALL ON FUNCTION pgbell.demo_grant_roles_v1() FROM PUBLIC;
