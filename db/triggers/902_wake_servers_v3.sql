-- Trigger _902_wake_servers_v3 on pgbell.notifications, AFTER INSERT, FOR EACH STATEMENT.
-- Replaces _901_wake_servers_v2 (dropped here with its function).
--
-- The adaptive wake-up of pgbell.wake_v2() (901_wake_servers_v2.sql, where
-- the protocol and its two advisory locks are explained; docs/architecture.md
-- "Adaptive wake-up"), written into the trigger function itself: every
-- notifying transaction runs it, and the call from one SECURITY DEFINER
-- function into another (search_path set and reset, a second PL/pgSQL
-- function prepared in each transaction) cost about as much as the locks.
-- The same steps in the same order: the window first, held until the
-- transaction ends; then the probe for a sleeping server, let go at once;
-- pg_notify when either is not taken. Never waits. The read-state and
-- token triggers still call pgbell.wake_v2().

CREATE FUNCTION pgbell.wake_servers_v3() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pg_try_advisory_xact_lock_shared(1885823596, 1) THEN
        -- held until this transaction ends: no server can fall asleep before
        -- then; and if none sleeps now, every server looks again after it
        IF pg_try_advisory_lock(1885823596, 2) THEN
            PERFORM pg_advisory_unlock(1885823596, 2);
            RETURN NULL;
        END IF;
    END IF;
    PERFORM pg_notify('pgbell_v1', '');
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION pgbell.wake_servers_v3() IS
    'After INSERT on notifications: what pgbell.wake_v2() does, in the trigger itself; a NOTIFY only if a server may be asleep.';
REVOKE ALL ON FUNCTION pgbell.wake_servers_v3() FROM PUBLIC;

DROP TRIGGER _901_wake_servers_v2 ON pgbell.notifications;
DROP FUNCTION pgbell.wake_servers_v2();

CREATE TRIGGER _902_wake_servers_v3
    AFTER INSERT ON pgbell.notifications
    FOR EACH STATEMENT EXECUTE FUNCTION pgbell.wake_servers_v3();

COMMENT ON TRIGGER _902_wake_servers_v3 ON pgbell.notifications IS
    'After INSERT on notifications: every pgbell server sees the rows (a NOTIFY on pgbell_v1 only if one may be asleep).';
