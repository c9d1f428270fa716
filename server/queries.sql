-- Every query pgbell runs, each under a named header read by sql.py: the
-- server's (asyncpg) and the commands' (psycopg's RawCursor); both take
-- PostgreSQL's own $1 placeholders.

-- name: current_snapshot
-- The commit-safe cursor: everything visible now is below xmax and not in xip.
SELECT pg_snapshot_xmax(s)::text AS xmax,
       array(SELECT x::text FROM pg_snapshot_xip(s) AS x) AS xip
  FROM pg_current_snapshot() AS s;

-- name: poll
-- The feed's look, in one statement (one snapshot, one round trip): every
-- notification and state change committed since the previous snapshot
-- ($1 xmax, $2 xip) for the users it already looked for ($3), and since the
-- snapshot before that ($4, $5, which the feed makes $1, $2 when there is
-- none, and NULL when no user is new: nothing is read twice) for users new
-- to it ($6, see feed.py); the unread counts (0 included) of the users it
-- asks for ($7) and of those whose read state changed (the feed
-- keeps the others' counts itself: counting a user's unread rows costs as
-- many rows as they have); the token version still valid for a user whose
-- tokens were revoked (NULL: the user is gone); and the new snapshot ('s'),
-- which pg_current_snapshot() gives as the statement's own, with the number
-- of new rows for anyone (`n`: the listener stays awake while rows come,
-- whoever they are for). Rows by part,
-- then id. The new rows are found by their transaction first (`fresh`, on
-- the xid index), whatever the planner thinks of the users' index, and
-- matched to the users through a hash (`IN (SELECT unnest(...))`): `= ANY`
-- of a parameter compares each row with every user, 60 ms a look for 300
-- rows and 50,000 users. Run on
-- the listener's connection, whose settings (pgbell.bus.listener) keep one
-- generic plan, forbid sequential scans (the planner cannot know how narrow
-- `xid >= $1` is, guesses a third of the table, and would read all of it)
-- and parallel workers.
WITH fresh AS MATERIALIZED (
    SELECT id, user_id, kind, title, body, priority::text AS priority, action_url, data,
           created_at, read_at, archived_at, xid
      FROM pgbell.notifications
     WHERE xid >= $4::text::xid8 OR xid = ANY ($5::text[]::xid8[])
        OR xid >= $1::text::xid8 OR xid = ANY ($2::text[]::xid8[])
), notes AS (
    -- one scan, like `changes`: a plan with fewer nodes to start on every look
    SELECT * FROM fresh
     WHERE ((xid >= $1::text::xid8 OR xid = ANY ($2::text[]::xid8[]))
            AND user_id IN (SELECT unnest($3::text[])))
        OR ((xid >= $4::text::xid8 OR xid = ANY ($5::text[]::xid8[]))
            AND user_id IN (SELECT unnest($6::text[])))
), changes AS (
    SELECT c.id, c.user_id, c.change, c.ids, u.token_version
      FROM pgbell.state_changes c
      -- only pgbell's own users are revoked, and their ids are bigints
      LEFT JOIN pgbell.users u
             ON c.change = 'revoked'
            AND u.id = CASE WHEN c.user_id ~ '^[0-9]{1,18}$' THEN c.user_id::bigint END
     WHERE ((c.xid >= $1::text::xid8 OR c.xid = ANY ($2::text[]::xid8[]))
            AND c.user_id IN (SELECT unnest($3::text[])))
        OR ((c.xid >= $4::text::xid8 OR c.xid = ANY ($5::text[]::xid8[]))
            AND c.user_id IN (SELECT unnest($6::text[])))
), counts AS (
    -- each user's rows on the unread index: a join would read the whole
    -- index (in a generic plan the planner cannot tell how few users come)
    SELECT u.user_id,
           (SELECT count(*) FROM pgbell.notifications n
             WHERE n.user_id = u.user_id AND n.read_at IS NULL AND n.archived_at IS NULL) AS n
      FROM (SELECT unnest($7::text[])
            UNION SELECT user_id FROM changes WHERE change <> 'revoked') AS u (user_id)
)
SELECT 'n' AS part, id, user_id,
       -- epoch seconds, for the delivery latency: cheaper to read than a timestamp
       date_part('epoch', created_at) AS created_at, read_at, archived_at,
       -- The notification object of PROTOCOL.md, made here, where it is cheap:
       -- the very text json_build_object makes of these pairs, for three
       -- quarters of its work (it looks up the type of each of its 18
       -- arguments, keys included, on every row; here to_json escapes the
       -- values alike and format joins them). NOT NULL columns need no coalesce.
       format('{"id" : %s, "kind" : %s, "title" : %s, "body" : %s, "priority" : %s, '
              '"action_url" : %s, "data" : %s, "created_at" : %s, "read_at" : %s}',
              id, to_json(kind), to_json(title), to_json(body), to_json(priority),
              coalesce(to_json(action_url), 'null'), data, to_json(created_at),
              coalesce(to_json(read_at), 'null')) AS doc,
       NULL::text AS change, NULL::bigint[] AS ids, NULL::bigint AS n,
       NULL::text AS xmax, NULL::text[] AS xip
  FROM notes
UNION ALL
SELECT 'c', id, user_id, NULL, NULL, NULL, NULL, change, ids, token_version, NULL, NULL
  FROM changes
UNION ALL
SELECT 'u', NULL, user_id, NULL, NULL, NULL, NULL, NULL, NULL, n, NULL, NULL
  FROM counts
UNION ALL
SELECT 's', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, (SELECT count(*) FROM fresh),
       pg_snapshot_xmax(s)::text, array(SELECT x::text FROM pg_snapshot_xip(s) AS x)
  FROM pg_current_snapshot() AS s
 ORDER BY part, id;

-- name: probe
-- Is anything new since the snapshot ($1 xmax, $2 xip), for anyone? The
-- feed asks this first while looks keep finding nothing: no user list to
-- send and plan. If nothing, this snapshot becomes the feed's cursor.
SELECT pg_snapshot_xmax(s)::text AS xmax,
       array(SELECT x::text FROM pg_snapshot_xip(s) AS x) AS xip,
       -- one index condition each: an OR inside one EXISTS is planned as a
       -- walk of the whole index, hoping for an early match
       EXISTS (SELECT FROM pgbell.notifications WHERE xid >= $1::text::xid8)
       OR EXISTS (SELECT FROM pgbell.notifications WHERE xid = ANY ($2::text[]::xid8[]))
       OR EXISTS (SELECT FROM pgbell.state_changes WHERE xid >= $1::text::xid8)
       OR EXISTS (SELECT FROM pgbell.state_changes WHERE xid = ANY ($2::text[]::xid8[]))
       AS new
  FROM pg_current_snapshot() AS s;

-- name: listener_session
-- The LISTEN connection's settings. The feed's statement runs hundreds of
-- times a second: planned once (planning it took longer than running it),
-- never as a scan of the whole table (the planner cannot tell how few rows
-- `xid >= $1` matches and guesses a third), without parallel workers
-- (starting them took ten times the look), and with the timestamps of the
-- JSON it makes in UTC.
SET plan_cache_mode = force_generic_plan;
SET enable_seqscan = off;
SET max_parallel_workers_per_gather = 0;
SET TimeZone = 'UTC';

-- name: fall_asleep
-- A server falls asleep (docs/architecture.md "Adaptive wake-up"): it takes
-- the window lock of every one of the 16 slots (1885823596, 1 + 2 * slot),
-- never waiting; false: a writer is between its check and the end of its
-- transaction, so the server keeps looking, and lets go of the windows it
-- took (in this order: the tries are all made, then the release, which
-- refers to the outcome row so that it runs after it).
WITH tried AS MATERIALIZED (
    SELECT s, pg_try_advisory_lock(1885823596, 1 + 2 * s) AS got
      FROM generate_series(0, 15) AS s
), outcome AS MATERIALIZED (
    SELECT bool_and(got) AS all_got FROM tried
)
SELECT o.all_got AS held,
       (SELECT count(pg_advisory_unlock(1885823596, 1 + 2 * s))
          FROM tried WHERE got AND NOT o.all_got) AS let_go
  FROM outcome AS o;

-- name: mark_asleep
-- Holding every window: mark this session asleep in every slot
-- (1885823596, 2 + 2 * slot), then let the windows go (in this order: the
-- asleep locks are all taken before the release). A slot whose asleep lock
-- a writer's probe held at that instant is not taken: then the server lets
-- go of the others too and stays awake.
WITH marked AS MATERIALIZED (
    SELECT s, pg_try_advisory_lock_shared(1885823596, 2 + 2 * s) AS got
      FROM generate_series(0, 15) AS s
), outcome AS MATERIALIZED (
    SELECT bool_and(got) AS asleep FROM marked
)
SELECT o.asleep,
       -- refers to the outcome row, so that it runs after every try
       (SELECT bool_and(pg_advisory_unlock(1885823596, 1 + 2 * s))
          FROM generate_series(0, 15) AS s WHERE o.asleep IS NOT NULL) AS released,
       (SELECT count(pg_advisory_unlock_shared(1885823596, 2 + 2 * s))
          FROM marked WHERE got AND NOT o.asleep) AS undone
  FROM outcome AS o;

-- name: wake_up
-- Awake again: writers stop sending NOTIFYs once no server holds these.
SELECT bool_and(pg_advisory_unlock_shared(1885823596, 2 + 2 * s))
  FROM generate_series(0, 15) AS s;

-- name: unread_counts
SELECT user_id, count(*) AS n
  FROM pgbell.notifications
 WHERE user_id = ANY ($1::text[]) AND read_at IS NULL AND archived_at IS NULL
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
-- least its horizon. So are the lower rows of the transaction that wrote
-- `since`: they reached the client before it, live (one look, in id order)
-- or in an earlier `missed` (id order), and sending them again would keep a
-- client that resumes from the last row of a cut `missed` in one place.
SELECT id, user_id, kind, title, body, priority::text, action_url, data, created_at, read_at
  FROM pgbell.notifications n
 WHERE n.user_id = $1
   AND (n.id > $2
        OR (n.id < $2
            AND n.xid >= (SELECT s.horizon FROM pgbell.notifications s
                           WHERE s.id = $2 AND s.user_id = $1)
            AND n.xid <> (SELECT s.xid FROM pgbell.notifications s
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
SELECT id, username, password_hash, roles, token_version FROM pgbell.users WHERE username = $1;

-- name: token_version
-- The version a pgbell-issued token must carry; no row: the user is gone.
SELECT token_version FROM pgbell.users WHERE id = $1;

-- name: user_exists
SELECT EXISTS (SELECT 1 FROM pgbell.users WHERE id = $1);

-- The demo's rules, each checked in the statement that acts: a manager is a
-- pgbell user whose roles (read now, not from the token) include 'manager'.

-- name: insert_deal
-- The caller ($4) creates a deal for itself, or for anyone while a manager;
-- no row: not allowed, and nothing was inserted (nor the owner looked up).
INSERT INTO public.deals (title, amount, owner_id, created_by)
SELECT $1, $2, $3::bigint, $4::bigint
 WHERE $3::bigint = $4::bigint
    OR EXISTS (SELECT 1 FROM pgbell.users u WHERE u.id = $4::bigint AND 'manager' = ANY (u.roles))
RETURNING id, title, amount, owner_id, created_by, created_at;

-- name: get_deal
-- Deal $1 as the caller ($2) may see it: its owner, its creator or a manager;
-- no row: unknown or not the caller's, alike.
SELECT d.id, d.title, d.amount, d.owner_id, d.created_by, d.created_at
  FROM public.deals d
 WHERE d.id = $1
   AND ($2::bigint IN (d.owner_id, d.created_by)
        OR EXISTS (SELECT 1 FROM pgbell.users u
                    WHERE u.id = $2::bigint AND 'manager' = ANY (u.roles)));

-- name: insert_payment
-- A payment by the caller ($3) on a deal it owns, or on any while a manager;
-- no row: the deal is unknown or not the caller's to pay.
INSERT INTO public.payments (deal_id, amount, created_by)
SELECT d.id, $2, $3::bigint FROM public.deals d
 WHERE d.id = $1
   AND (d.owner_id = $3::bigint
        OR EXISTS (SELECT 1 FROM pgbell.users u
                    WHERE u.id = $3::bigint AND 'manager' = ANY (u.roles)))
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

-- name: schema_versions
SELECT version_num FROM pgbell.alembic_version ORDER BY version_num;

-- The commands' queries (pgbell.ops): run by pgbell's owner or a DBA.

-- name: version_table_exists
SELECT to_regclass('pgbell.alembic_version');

-- name: role_exists
SELECT to_regrole($1);

-- name: may_create_roles
SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user;

-- name: grant_roles
SELECT pgbell.grant_roles_v2();

-- name: demo_grant_roles
SELECT pgbell.demo_grant_roles_v1();

-- name: add_user
INSERT INTO pgbell.users (username, password_hash, roles) VALUES ($1, $2, $3) RETURNING id;

-- name: set_password
-- A new token_version refuses every token issued before.
UPDATE pgbell.users SET password_hash = $2, token_version = token_version + 1
 WHERE username = $1
RETURNING id;

-- name: delete_user
-- The user's notifications and preferences go with it: nothing else keys
-- them to pgbell's own users (recipients are text).
WITH gone AS (DELETE FROM pgbell.users WHERE username = $1 RETURNING id::text AS recipient),
     notes AS (DELETE FROM pgbell.notifications n USING gone WHERE n.user_id = gone.recipient),
     kinds AS (DELETE FROM pgbell.preferences p USING gone WHERE p.user_id = gone.recipient),
     glob AS (DELETE FROM pgbell.global_preferences g USING gone WHERE g.user_id = gone.recipient)
SELECT recipient FROM gone;

-- name: rule_relation
-- The tables of the triggers of that name that run a pgbell function.
SELECT t.tgrelid::regclass::text
  FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
 WHERE t.tgname = $1 AND NOT t.tgisinternal AND p.pronamespace = 'pgbell'::regnamespace
 ORDER BY 1;

-- name: list_rules
SELECT name, table_name, timing || ' ' || event || ' / ' || level, function,
       enabled, coalesce(comment, '')
  FROM pgbell.rules ORDER BY table_name, name;

-- name: prune_notifications
-- Retention, one short batch: $1 days, $2 unread too, $3 rows at most.
WITH doomed AS (
    SELECT id FROM pgbell.notifications
     WHERE created_at < now() - make_interval(days => $1)
       AND ($2 OR read_at IS NOT NULL OR archived_at IS NOT NULL)
     ORDER BY id
     LIMIT $3
       FOR UPDATE SKIP LOCKED
)
DELETE FROM pgbell.notifications n USING doomed WHERE n.id = doomed.id;

-- The server's health and metrics, and `pgbell check`.

-- name: notification_queue_usage
-- The fill level of PostgreSQL's NOTIFY queue, 0 to 1: at 1 every notifying COMMIT fails.
SELECT pg_notification_queue_usage();

-- name: backend_pid
-- Which PostgreSQL backend runs this transaction: a transaction-mode pooler
-- hands one client's transactions to different ones.
SELECT pg_backend_pid();

-- name: server_version
SELECT current_setting('server_version');

-- name: role_grants
-- $1 role names: whether each exists, and whether it holds its privileges in
-- this database (USAGE on schema pgbell, granted by `pgbell migrate`).
SELECT r.name,
       to_regrole(r.name) IS NOT NULL AS present,
       -- CASE, not AND: only CASE promises not to ask about a role that is missing
       CASE WHEN to_regrole(r.name) IS NULL OR to_regnamespace('pgbell') IS NULL THEN false
            ELSE has_schema_privilege(r.name, 'pgbell', 'USAGE') END AS granted
  FROM unnest($1::text[]) AS r(name)
 ORDER BY r.name;

-- name: snapshot_batch
-- The snapshots of many sockets in one statement, so one snapshot of the
-- database: $1 the sockets' users, $2 their since (NULL: no resume), in the
-- same order. Rows of three parts: 'c' one per user, its unread count in
-- `id`; 'u' a user's newest $3 unread; 'm' a resuming socket's missed rows
-- (as missed_since), at most $4 of them, `ord` its place in $1 (from 1).
WITH s AS (SELECT * FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS s(user_id, since, ord)),
     u AS (SELECT DISTINCT user_id FROM s)
SELECT NULL::bigint AS ord, 'c' AS part, c.n AS id, u.user_id, NULL AS kind, NULL AS title,
       NULL AS body, NULL AS priority, NULL AS action_url, NULL::jsonb AS data,
       NULL::timestamptz AS created_at, NULL::timestamptz AS read_at
  FROM u CROSS JOIN LATERAL (
         SELECT count(*) AS n FROM pgbell.notifications
          WHERE user_id = u.user_id AND read_at IS NULL AND archived_at IS NULL) c
UNION ALL
SELECT NULL, 'u', n.*
  FROM u CROSS JOIN LATERAL (
         SELECT id, user_id, kind, title, body, priority::text, action_url, data, created_at, read_at
           FROM pgbell.notifications
          WHERE user_id = u.user_id AND read_at IS NULL AND archived_at IS NULL
          ORDER BY id DESC
          LIMIT $3) n
UNION ALL
SELECT s.ord, 'm', n.*
  FROM s CROSS JOIN LATERAL (
         SELECT id, user_id, kind, title, body, priority::text, action_url, data, created_at, read_at
           FROM pgbell.notifications n
          WHERE n.user_id = s.user_id
            AND (n.id > s.since
                 OR (n.id < s.since
                     AND n.xid >= (SELECT h.horizon FROM pgbell.notifications h
                                    WHERE h.id = s.since AND h.user_id = s.user_id)
                     AND n.xid <> (SELECT h.xid FROM pgbell.notifications h
                                    WHERE h.id = s.since AND h.user_id = s.user_id)))
          ORDER BY n.id
          LIMIT $4) n
 WHERE s.since IS NOT NULL
 ORDER BY part, ord, id;
