-- Trigger _903_wake_servers_v4 on pgbell.notifications, AFTER INSERT, FOR EACH STATEMENT.
-- Replaces _902_wake_servers_v3 (dropped here with its function).
--
-- The adaptive wake-up (docs/architecture.md "Adaptive wake-up") over 16
-- slots. A writer's session uses one slot, pg_backend_pid() mod 16, and its
-- two advisory locks: the window (1885823596, 1 + 2 * slot) and asleep
-- (1885823596, 2 + 2 * slot). Slot 0 is the pair pgbell.wake_v2() uses
-- (901_wake_servers_v2.sql; the read-state and token triggers still call
-- it). A server falls asleep only once it has held every slot's window at
-- once, and sleeps holding every slot's asleep lock, so each writer sees
-- it from its own slot.
--
-- Why slots: a writer probes asleep EXCLUSIVE for an instant, so two
-- writers probing the same key together make one of them send a NOTIFY
-- no server needed, and pay the commit lock for it. With one pair of keys
-- that was about 1.5% of the commits at 64 pgbench clients; spread over 16
-- slots, about a tenth of that. The same steps in the same order as
-- before: the window first, held until the transaction ends; then the
-- probe, let go at once; pg_notify when either is not taken. Never waits.

CREATE FUNCTION pgbell.wake_servers_v4() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k int := 2 * (pg_backend_pid() % 16);  -- this session's slot, times 2
BEGIN
    IF pg_try_advisory_xact_lock_shared(1885823596, k + 1) THEN
        -- held until this transaction ends: no server can fall asleep before
        -- then; and if none sleeps now, every server looks again after it
        IF pg_try_advisory_lock(1885823596, k + 2) THEN
            PERFORM pg_advisory_unlock(1885823596, k + 2);
            RETURN NULL;
        END IF;
    END IF;
    PERFORM pg_notify('pgbell_v1', '');
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION pgbell.wake_servers_v4() IS
    'After INSERT on notifications: a NOTIFY only if a server may be asleep, checked in this session''s slot of 16.';
REVOKE ALL ON FUNCTION pgbell.wake_servers_v4() FROM PUBLIC;

DROP TRIGGER _902_wake_servers_v3 ON pgbell.notifications;
DROP FUNCTION pgbell.wake_servers_v3();

CREATE TRIGGER _903_wake_servers_v4
    AFTER INSERT ON pgbell.notifications
    FOR EACH STATEMENT EXECUTE FUNCTION pgbell.wake_servers_v4();

COMMENT ON TRIGGER _903_wake_servers_v4 ON pgbell.notifications IS
    'After INSERT on notifications: every pgbell server sees the rows (a NOTIFY on pgbell_v1 only if one may be asleep).';
