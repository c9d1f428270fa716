-- Trigger _921_tokens_revoked_v2 on pgbell.users, AFTER UPDATE OF token_version OR DELETE, FOR EACH ROW.
--
-- pgbell's own users only (standalone mode): when a user's token_version
-- changes (`pgbell user password`) or the user is deleted (`pgbell user
-- delete`), this records a 'revoked' row in pgbell.state_changes for that
-- recipient and wakes the servers (pgbell.wake_v2()), so that every server
-- closes the user's open sockets whose token is older (4401). New requests
-- with such a token are refused anyway: the token's version is checked.
-- Row level: the users table changes rarely, and UPDATE OF cannot have a
-- transition table.

DROP TRIGGER _920_tokens_revoked_v1 ON pgbell.users;
DROP FUNCTION pgbell.tokens_revoked_v1();

CREATE FUNCTION pgbell.tokens_revoked_v2() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.token_version IS DISTINCT FROM OLD.token_version THEN
        INSERT INTO pgbell.state_changes (user_id, change, ids) VALUES (OLD.id::text, 'revoked', '{}');
        PERFORM pgbell.wake_v2();
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION pgbell.tokens_revoked_v2() IS
    'Records a revoked row in pgbell.state_changes when a user''s token_version changes or the user is deleted, and wakes the servers, which close that user''s sockets with older tokens.';

CREATE TRIGGER _921_tokens_revoked_v2
    AFTER UPDATE OF token_version OR DELETE ON pgbell.users
    FOR EACH ROW EXECUTE FUNCTION pgbell.tokens_revoked_v2();

REVOKE ALL ON FUNCTION pgbell.tokens_revoked_v2() FROM PUBLIC;

COMMENT ON TRIGGER _921_tokens_revoked_v2 ON pgbell.users IS
    'After a password change or a deletion: open sockets with older tokens are closed (4401).';
