-- Trigger _900_wake_servers_v1 on pgbell.notifications, AFTER INSERT, FOR EACH STATEMENT.
--
-- Sends pg_notify('pgbell_v1', '') once per statement. The payload is
-- constant on purpose: PostgreSQL delivers identical (channel, payload)
-- pairs of one transaction once, at commit, so a transaction that writes
-- 10,000 notifications wakes each server once. Servers read the rows from
-- the table, never from the payload (8,000-byte limit), and a rolled-back
-- transaction wakes nobody. Runs as pgbell's owner, like every pgbell
-- function (SECURITY DEFINER, pinned search_path).

CREATE FUNCTION pgbell.wake_servers_v1() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_notify('pgbell_v1', '');
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION pgbell.wake_servers_v1() IS
    'pg_notify(''pgbell_v1'', '''') with a constant payload: one wake-up per transaction, delivered on commit.';

CREATE TRIGGER _900_wake_servers_v1
    AFTER INSERT ON pgbell.notifications
    FOR EACH STATEMENT EXECUTE FUNCTION pgbell.wake_servers_v1();

REVOKE ALL ON FUNCTION pgbell.wake_servers_v1() FROM PUBLIC;

COMMENT ON TRIGGER _900_wake_servers_v1 ON pgbell.notifications IS
    'After INSERT on notifications: wake every pgbell server on commit (channel pgbell_v1).';
