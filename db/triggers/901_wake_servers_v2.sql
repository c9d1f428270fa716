-- Adaptive wake-up: a writer calls pg_notify only when a server may be asleep.
--
-- A transaction that has called NOTIFY holds a database-wide lock from the
-- moment it queues the notification until its commit is flushed, so every
-- notifying commit waits for the one before it. While every server is
-- awake (polling pgbell.notifications in a loop, see docs/architecture.md
-- "Adaptive wake-up"), no writer needs to send anything, and none does.
--
-- Two advisory locks, two-key form (1885823596 = 'pgbl', n), per database:
--   (pgbl, 1) "window": a writer holds it SHARED from its check until its
--             transaction has ended; a server takes it EXCLUSIVE (never
--             waiting) for the instant it marks itself asleep. A writer that
--             saw no sleeper therefore commits before any server can fall
--             asleep, and that server's last look after falling asleep sees
--             the writer's rows.
--   (pgbl, 2) "asleep": every sleeping server holds it SHARED on its LISTEN
--             connection (session level: it ends with the connection, so a
--             dead server never looks asleep or awake); a writer probes it
--             EXCLUSIVE and lets go at once: taken means no server sleeps.
-- Neither lock is ever waited for: a writer that cannot be sure sends the
-- NOTIFY, which is always correct. Locks are not MVCC: a writer's snapshot,
-- whatever its isolation level, plays no part in the decision.
--
-- pgbell.wake_v2() is private: the triggers below and the read-state and
-- token triggers call it.

CREATE FUNCTION pgbell.wake_v2() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pg_try_advisory_xact_lock_shared(1885823596, 1) THEN
        -- held until this transaction ends: no server can fall asleep before
        -- then; and if none sleeps now, every server looks again after it
        IF pg_try_advisory_lock(1885823596, 2) THEN
            PERFORM pg_advisory_unlock(1885823596, 2);
            RETURN;
        END IF;
    END IF;
    PERFORM pg_notify('pgbell_v1', '');
END;
$$;

COMMENT ON FUNCTION pgbell.wake_v2() IS
    'Wakes the servers on commit (pg_notify pgbell_v1) only if one may be asleep; otherwise keeps every server from falling asleep until this transaction ends. Never waits.';
REVOKE ALL ON FUNCTION pgbell.wake_v2() FROM PUBLIC;

CREATE FUNCTION pgbell.wake_servers_v2() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pgbell.wake_v2();
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION pgbell.wake_servers_v2() IS
    'After INSERT on notifications: pgbell.wake_v2(), a NOTIFY only if a server may be asleep.';
REVOKE ALL ON FUNCTION pgbell.wake_servers_v2() FROM PUBLIC;

DROP TRIGGER _900_wake_servers_v1 ON pgbell.notifications;
DROP FUNCTION pgbell.wake_servers_v1();

CREATE TRIGGER _901_wake_servers_v2
    AFTER INSERT ON pgbell.notifications
    FOR EACH STATEMENT EXECUTE FUNCTION pgbell.wake_servers_v2();

COMMENT ON TRIGGER _901_wake_servers_v2 ON pgbell.notifications IS
    'After INSERT on notifications: every pgbell server sees the rows (a NOTIFY on pgbell_v1 only if one may be asleep).';
