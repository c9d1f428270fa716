-- The server's queries, each under a named header read by server/sql.py.

-- name: current_snapshot
-- The commit-safe cursor: everything visible now is below xmax and not in xip.
SELECT pg_snapshot_xmax(s)::text AS xmax,
       array(SELECT x::text FROM pg_snapshot_xip(s) AS x) AS xip
  FROM pg_current_snapshot() AS s;

-- name: new_notifications
-- Rows committed since the previous snapshot ($1 xmax, $2 xip), for the users
-- connected to this server ($3), in one query whatever their number.
SELECT id, user_id, kind, title, body, priority::text, action_url, data, created_at, read_at
  FROM pgbell.notifications
 WHERE (xid >= $1::text::xid8 OR xid = ANY ($2::text[]::xid8[]))
   AND user_id = ANY ($3::bigint[])
 ORDER BY id;

-- name: new_state_changes
SELECT user_id, change, ids
  FROM pgbell.state_changes
 WHERE (xid >= $1::text::xid8 OR xid = ANY ($2::text[]::xid8[]))
   AND user_id = ANY ($3::bigint[])
 ORDER BY id;

-- name: unread_counts
SELECT user_id, count(*) AS n
  FROM pgbell.notifications
 WHERE user_id = ANY ($1::bigint[]) AND read_at IS NULL AND archived_at IS NULL
 GROUP BY user_id;

-- name: unread_count
SELECT count(*) FROM pgbell.notifications
 WHERE user_id = $1 AND read_at IS NULL AND archived_at IS NULL;

-- name: snapshot_unread
SELECT id, user_id, kind, title, body, priority::text, action_url, data, created_at, read_at
  FROM pgbell.notifications
 WHERE user_id = $1 AND read_at IS NULL AND archived_at IS NULL
 ORDER BY id DESC
 LIMIT $2;

-- name: missed_since
-- Everything above `since`, plus rows with a lower id that committed after
-- `since` was written (their xid is at least the horizon stored with it).
-- `since` itself is the client's own and is left out: its xid is always at
-- least its horizon.
SELECT id, user_id, kind, title, body, priority::text, action_url, data, created_at, read_at
  FROM pgbell.notifications n
 WHERE n.user_id = $1
   AND (n.id > $2
        OR (n.id < $2
            AND n.xid >= (SELECT s.horizon FROM pgbell.notifications s
                           WHERE s.id = $2 AND s.user_id = $1)))
 ORDER BY n.id
 LIMIT $3;

-- name: list_notifications
SELECT id, user_id, kind, title, body, priority::text, action_url, data, created_at, read_at
  FROM pgbell.notifications
 WHERE user_id = $1
   AND archived_at IS NULL
   AND ($2::bool IS NOT TRUE OR read_at IS NULL)
   AND ($3::bigint IS NULL OR id < $3)
 ORDER BY id DESC
 LIMIT $4;

-- name: mark_read
UPDATE pgbell.notifications SET read_at = now()
 WHERE id = $1 AND user_id = $2 AND read_at IS NULL;

-- name: get_notification
SELECT id, user_id, kind, title, body, priority::text, action_url, data, created_at, read_at
  FROM pgbell.notifications WHERE id = $1 AND user_id = $2;

-- name: mark_many_read
UPDATE pgbell.notifications SET read_at = now()
 WHERE user_id = $1 AND id = ANY ($2::bigint[]) AND read_at IS NULL;

-- name: mark_all_read
UPDATE pgbell.notifications SET read_at = now()
 WHERE user_id = $1 AND read_at IS NULL AND archived_at IS NULL;

-- name: user_by_name
SELECT id, username, password_hash, roles FROM pgbell.users WHERE username = $1;

-- name: user_exists
SELECT EXISTS (SELECT 1 FROM pgbell.users WHERE id = $1);

-- name: insert_deal
INSERT INTO public.deals (title, amount, owner_id, created_by)
VALUES ($1, $2, $3, $4)
RETURNING id, title, amount, owner_id, created_by, created_at;

-- name: get_deal
SELECT id, title, amount, owner_id, created_by, created_at FROM public.deals WHERE id = $1;

-- name: insert_payment
INSERT INTO public.payments (deal_id, amount, created_by)
SELECT d.id, $2, $3 FROM public.deals d WHERE d.id = $1
RETURNING id, deal_id, amount, created_by, created_at;

-- name: prune_state_changes
DELETE FROM pgbell.state_changes WHERE created_at < now() - make_interval(secs => $1);

-- name: global_preferences
SELECT muted, min_priority::text FROM pgbell.global_preferences WHERE user_id = $1;

-- name: kind_preferences
-- Every kind with a template, with this user's setting or the default.
SELECT t.kind, t.description, t.priority::text AS default_priority,
       coalesce(p.muted, false) AS muted, p.min_priority::text AS min_priority
  FROM pgbell.templates t
  LEFT JOIN pgbell.preferences p ON p.kind = t.kind AND p.user_id = $1
 ORDER BY t.kind;

-- name: known_kinds
SELECT kind FROM pgbell.templates WHERE kind = ANY ($1::text[]);

-- name: upsert_global_preferences
INSERT INTO pgbell.global_preferences (user_id, muted, min_priority)
VALUES ($1, $2, $3::text::pgbell.priority)
ON CONFLICT (user_id) DO UPDATE SET muted = excluded.muted, min_priority = excluded.min_priority;

-- name: clear_kind_preferences
DELETE FROM pgbell.preferences WHERE user_id = $1;

-- name: insert_kind_preference
INSERT INTO pgbell.preferences (user_id, kind, muted, min_priority)
VALUES ($1, $2, $3, $4::text::pgbell.priority);

-- name: archive_one
UPDATE pgbell.notifications SET archived_at = now()
 WHERE id = $1 AND user_id = $2 AND archived_at IS NULL;

-- name: archive_read
UPDATE pgbell.notifications SET archived_at = now()
 WHERE user_id = $1 AND read_at IS NOT NULL AND archived_at IS NULL;
