-- Trigger _911_state_changes_v2 on pgbell.notifications, AFTER UPDATE, FOR EACH STATEMENT.
--
-- Whoever changes read_at or archived_at (the REST API, a WebSocket, or
-- `UPDATE pgbell.notifications SET read_at = now() WHERE ...` in psql), this
-- records one pgbell.state_changes row per user and change ('read',
-- 'unread', 'archived') with the ids, and wakes the servers with
-- pgbell.wake_v2() (a NOTIFY only if one may be asleep), so they push a
-- read frame with the new unread count to every socket of that user.
-- Updates that change neither column send nothing.
-- Replaces _910_state_changes_v1, which sent a NOTIFY every time.
-- SECURITY DEFINER: whoever may mark rows read (the server's role) need not
-- be able to write pgbell.state_changes.

DROP TRIGGER _910_state_changes_v1 ON pgbell.notifications;
DROP FUNCTION pgbell.state_changes_v1();

CREATE FUNCTION pgbell.state_changes_v2() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    recorded integer;
BEGIN
    INSERT INTO pgbell.state_changes (user_id, change, ids)
    SELECT n.user_id, c.change, array_agg(n.id ORDER BY n.id)
      FROM new_rows n
      JOIN old_rows o ON o.id = n.id
     CROSS JOIN LATERAL (
            SELECT 'read' WHERE o.read_at IS NULL AND n.read_at IS NOT NULL
            UNION ALL
            SELECT 'unread' WHERE o.read_at IS NOT NULL AND n.read_at IS NULL
            UNION ALL
            SELECT 'archived' WHERE o.archived_at IS NULL AND n.archived_at IS NOT NULL
           ) AS c (change)
     GROUP BY n.user_id, c.change;
    GET DIAGNOSTICS recorded = ROW_COUNT;
    IF recorded > 0 THEN
        PERFORM pgbell.wake_v2();
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION pgbell.state_changes_v2() IS
    'Records read/unread/archived changes in pgbell.state_changes and wakes the servers on commit.';

CREATE TRIGGER _911_state_changes_v2
    AFTER UPDATE ON pgbell.notifications
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pgbell.state_changes_v2();

REVOKE ALL ON FUNCTION pgbell.state_changes_v2() FROM PUBLIC;

COMMENT ON TRIGGER _911_state_changes_v2 ON pgbell.notifications IS
    'After UPDATE on notifications: read/unread/archived changes reach every socket of the user.';
