-- pgbell.notify_many(kind, events, priority, best_effort) -> rows written
-- pgbell.notify(kind, user_ids, roles, data, priority) -> rows written (v2 body)
--
-- The public SQL API; any writer calls it inside its own transaction.
-- notify_many is the set form: `events` is a JSON array with one object per
-- event, {"user_ids": [...], "roles": [...], "data": {...}} (every key
-- optional), and all of its notifications are written by one INSERT into
-- pgbell.notifications, so a trigger that hands it a whole transition
-- table costs one statement, not one per row. pgbell.notify keeps its
-- signature and behaviour: it is what notify_many does for one event,
-- without building and checking JSON (pgbell.notify_one_v1, which
-- triggers also call for a statement that wrote one row).
--
-- For each event: render the kind's template from pgbell.templates with its
-- data (pgbell.render_v2, one query for every event and field), expand its
-- roles with pgbell.role_members() (called once per distinct role and
-- statement), add its user_ids (the application's ids: JSON strings or
-- numbers; null skipped), drop recipients whose preferences mute the kind
-- or ask for a higher priority (urgent is always delivered), and insert one
-- row per recipient, event by event in order, recipients sorted. The rows
-- wake the servers through the triggers on pgbell.notifications at commit.
-- Template problems (a placeholder without data, an unsafe action_url)
-- raise one WARNING per field and problem and statement, and count every
-- notification concerned in pgbell.template_problems.seen.
--
-- Errors. The caller's own mistakes raise invalid_parameter_value: an
-- unknown kind, a recipient id in user_ids that is empty or longer than
-- 255 characters, events that are not an array of such objects. An empty
-- or NULL `events` writes nothing and checks nothing.
-- best_effort => true is for triggers, which must never abort their
-- writer's statement because of pgbell. It turns the failures pgbell can
-- foresee into a WARNING instead of an error: an unknown kind (a DBA
-- deleted the template) writes nothing; a recipient id, named or returned
-- by pgbell.role_members(), that is empty or longer than 255 characters is
-- skipped. They are checked before anything is written, in the same
-- statements that do the work, so the trigger needs no EXCEPTION block and
-- no subtransaction per statement (v1 opened one). What cannot be foreseen
-- (a replaced pgbell.role_members() that raises, a lock or statement
-- timeout, running out of memory) aborts the statement, as any failing
-- trigger does.
--
-- SECURITY DEFINER with a pinned search_path: both run as pgbell's owner,
-- so a writer needs EXECUTE on them (the role pgbell_writer) and nothing
-- else in the schema; it cannot read pgbell.users or insert rows of its own
-- making. pgbell.notify calls notify_many: one SECURITY DEFINER hop, where
-- v1 made one per render, per URL check and per role. Its statements keep
-- one generic plan each (plan_cache_mode): planning them anew for every
-- call's values cost more than running them for a single event.

-- pgbell.refuse_input_v1(kind, problem, best_effort, n): the caller's bad
-- input to pgbell.notify / notify_many, as an error (invalid_parameter_value)
-- or, with best_effort, as a WARNING: 'unknown_kind' (nothing is written) or
-- 'bad_ids' (n recipient ids empty or longer than 255 characters, skipped).
-- Private: only the notify functions call it, and only on those paths.

CREATE FUNCTION pgbell.refuse_input_v1(kind text, problem text, best_effort boolean, n bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF problem = 'unknown_kind' THEN
        IF best_effort THEN
            RAISE WARNING 'pgbell: % notifications not written: unknown notification kind %',
                kind, quote_literal(kind)
                USING HINT = 'Its template is gone from pgbell.templates; the writer''s statement went on.';
            RETURN;
        END IF;
        RAISE EXCEPTION 'pgbell.notify: unknown notification kind %', quote_literal(kind)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Add a template first: INSERT INTO pgbell.templates (kind, title, body) VALUES (...)';
    END IF;
    IF NOT best_effort THEN
        RAISE EXCEPTION 'pgbell.notify: a recipient id must be 1 to 255 characters'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'user_ids are the application''s user ids as text, e.g. ARRAY[owner_id::text]';
    END IF;
    RAISE WARNING 'pgbell: % notifications: % recipient ids are empty or longer than 255 characters; skipped',
        kind, n;
END;
$$;

COMMENT ON FUNCTION pgbell.refuse_input_v1(text, text, boolean, bigint) IS
    'The notify functions'' answer to bad input: an error, or with best_effort a WARNING (unknown kind, recipient ids out of bounds).';
REVOKE ALL ON FUNCTION pgbell.refuse_input_v1(text, text, boolean, bigint) FROM PUBLIC;

CREATE FUNCTION pgbell.notify_many(
    kind        text,
    events      jsonb,
    priority    pgbell.priority DEFAULT NULL,
    best_effort boolean DEFAULT false
) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    tpl        pgbell.templates;
    eff        pgbell.priority;
    datas      jsonb[];
    bad_shape  boolean;
    bad_ids    bigint;
    titles     text[];
    bodies     text[];
    urls       text[];
    problems   jsonb;
    problem    jsonb;
    refused    bigint;
    m_roles    text[];
    m_ids      text[];
    bad_member bigint;
    written    integer;
BEGIN
    IF coalesce(jsonb_typeof(events), 'array') <> 'array' THEN
        RAISE EXCEPTION 'pgbell.notify_many: events must be a JSON array, not %', jsonb_typeof(events)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'One object per event: [{"user_ids": ["42"], "roles": ["manager"], "data": {...}}]';
    END IF;
    IF coalesce(jsonb_array_length(events), 0) = 0 THEN
        RETURN 0;
    END IF;
    SELECT * INTO tpl FROM pgbell.templates t WHERE t.kind = notify_many.kind;
    IF NOT FOUND THEN
        PERFORM pgbell.refuse_input_v1(notify_many.kind, 'unknown_kind', best_effort, 0);
        RETURN 0;
    END IF;

    -- every event's data, and whether the events are well formed
    SELECT array_agg(coalesce(e.ev -> 'data', '{}') ORDER BY e.ord),
           bool_or(jsonb_typeof(e.ev) <> 'object'
                   OR jsonb_typeof(coalesce(e.ev -> 'user_ids', 'null')) NOT IN ('array', 'null')
                   OR jsonb_typeof(coalesce(e.ev -> 'roles', 'null')) NOT IN ('array', 'null')
                   OR ids.bad_type OR r.bad_type),
           sum(ids.bad_length)
      INTO datas, bad_shape, bad_ids
      FROM jsonb_array_elements(events) WITH ORDINALITY AS e (ev, ord)
     CROSS JOIN LATERAL (
            SELECT coalesce(bool_or(jsonb_typeof(u.id) NOT IN ('string', 'number', 'null')), false),
                   count(*) FILTER (WHERE length(u.id #>> '{}') NOT BETWEEN 1 AND 255)
              FROM jsonb_array_elements(CASE jsonb_typeof(e.ev -> 'user_ids')
                                        WHEN 'array' THEN e.ev -> 'user_ids' END) AS u (id)
           ) AS ids (bad_type, bad_length)
     CROSS JOIN LATERAL (
            SELECT coalesce(bool_or(jsonb_typeof(g.role) NOT IN ('string', 'null')), false)
              FROM jsonb_array_elements(CASE jsonb_typeof(e.ev -> 'roles')
                                        WHEN 'array' THEN e.ev -> 'roles' END) AS g (role)
           ) AS r (bad_type);
    IF bad_shape THEN
        RAISE EXCEPTION 'pgbell.notify_many: each event must be an object whose user_ids (strings or numbers) and roles (strings) are arrays'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'One object per event: [{"user_ids": ["42"], "roles": ["manager"], "data": {...}}]';
    END IF;
    IF bad_ids > 0 THEN
        PERFORM pgbell.refuse_input_v1(tpl.kind, 'bad_ids', best_effort, bad_ids);
    END IF;
    eff := coalesce(notify_many.priority, tpl.priority);

    -- every field of every event in one query; problems grouped by field
    WITH r AS MATERIALIZED (
        SELECT * FROM pgbell.render_v2(ARRAY[tpl.title, tpl.body, tpl.action_url], datas)
    )
    SELECT (SELECT array_agg(r.rendered ORDER BY r.event) FROM r WHERE r.field = 1),
           (SELECT array_agg(r.rendered ORDER BY r.event) FROM r WHERE r.field = 2),
           (SELECT array_agg(r.rendered ORDER BY r.event) FROM r WHERE r.field = 3),
           (SELECT jsonb_agg(jsonb_build_array(p.field, p.missing, p.n) ORDER BY p.field, p.missing)
              FROM (SELECT r.field, r.missing, count(*) AS n FROM r
                     WHERE cardinality(r.missing) > 0 GROUP BY r.field, r.missing) AS p)
      INTO titles, bodies, urls, problems;
    FOR problem IN SELECT * FROM jsonb_array_elements(problems) LOOP
        PERFORM pgbell.report_problem_v2(tpl.kind, (ARRAY['title', 'body', 'action_url'])[(problem ->> 0)::int],
                                         'missing_data',
                                         ARRAY(SELECT jsonb_array_elements_text(problem -> 1)),
                                         (problem ->> 2)::bigint);
    END LOOP;
    IF tpl.action_url IS NULL THEN
        urls := NULL;
    ELSE
        SELECT array_agg(CASE WHEN x.ok THEN x.url END ORDER BY x.ord), count(*) FILTER (WHERE NOT x.ok)
          INTO urls, refused
          FROM (SELECT u.url, u.ord, pgbell.action_url_ok_v1(u.url) AS ok
                  FROM unnest(urls) WITH ORDINALITY AS u (url, ord)) AS x;
        IF refused > 0 THEN
            PERFORM pgbell.report_problem_v2(tpl.kind, 'action_url', 'invalid_action_url', '{}', refused);
        END IF;
    END IF;

    -- the members of every role named, once per role
    SELECT array_agg(g.role), array_agg(m.id),
           count(*) FILTER (WHERE length(m.id) NOT BETWEEN 1 AND 255)
      INTO m_roles, m_ids, bad_member
      FROM (SELECT DISTINCT g.role
              FROM jsonb_array_elements(events) AS e (ev),
                   jsonb_array_elements_text(CASE jsonb_typeof(e.ev -> 'roles')
                                             WHEN 'array' THEN e.ev -> 'roles' END) AS g (role)
             WHERE g.role IS NOT NULL) AS g,
           pgbell.role_members(g.role) AS m (id);
    IF bad_member > 0 AND best_effort THEN
        RAISE WARNING 'pgbell: % notifications: % recipient ids from pgbell.role_members() are empty or longer than 255 characters; skipped',
            tpl.kind, bad_member;
    END IF;

    INSERT INTO pgbell.notifications (user_id, kind, title, body, priority, action_url, data)
    SELECT r.id, tpl.kind, e.title, e.body, eff, e.url, e.data
      FROM unnest(titles, bodies, urls, datas) WITH ORDINALITY AS e (title, body, url, data, ord)
      JOIN (SELECT x.ord, u.id
              FROM jsonb_array_elements(events) WITH ORDINALITY AS x (ev, ord),
                   jsonb_array_elements_text(CASE jsonb_typeof(x.ev -> 'user_ids')
                                             WHEN 'array' THEN x.ev -> 'user_ids' END) AS u (id)
            UNION
            SELECT x.ord, m.id
              FROM jsonb_array_elements(events) WITH ORDINALITY AS x (ev, ord),
                   jsonb_array_elements_text(CASE jsonb_typeof(x.ev -> 'roles')
                                             WHEN 'array' THEN x.ev -> 'roles' END) AS g (role)
              JOIN unnest(m_roles, m_ids) AS m (role, id) ON m.role = g.role) AS r ON r.ord = e.ord
      LEFT JOIN pgbell.global_preferences gp ON gp.user_id = r.id
      LEFT JOIN pgbell.preferences p ON p.user_id = r.id AND p.kind = tpl.kind
     WHERE r.id IS NOT NULL
       AND (NOT best_effort OR length(r.id) BETWEEN 1 AND 255)
       AND (eff = 'urgent'
            OR (NOT coalesce(gp.muted, false)
                AND NOT coalesce(p.muted, false)
                AND eff >= coalesce(p.min_priority, gp.min_priority, 'low')))
     ORDER BY r.ord, r.id;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END;
$$;

COMMENT ON FUNCTION pgbell.notify_many(text, jsonb, pgbell.priority, boolean) IS
    'Public API, the set form of pgbell.notify: events is a JSON array of {user_ids, roles, data}; every notification of every event is written by one INSERT. best_effort => true (for triggers) turns an unknown kind and invalid recipient ids into WARNINGs. Returns the rows written.';
REVOKE ALL ON FUNCTION pgbell.notify_many(text, jsonb, pgbell.priority, boolean) FROM PUBLIC;

CREATE FUNCTION pgbell.notify_one_v1(
    kind        text,
    user_ids    text[],
    roles       text[],
    data        jsonb,
    priority    pgbell.priority,
    best_effort boolean
) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    tpl     pgbell.templates;
    eff     pgbell.priority;
    out     record;
    title   text;
    body    text;
    url     text;
    bad_ids bigint;
    written integer;
BEGIN
    SELECT * INTO tpl FROM pgbell.templates t WHERE t.kind = notify_one_v1.kind;
    IF NOT FOUND THEN
        PERFORM pgbell.refuse_input_v1(notify_one_v1.kind, 'unknown_kind', best_effort, 0);
        RETURN 0;
    END IF;
    SELECT count(*) INTO bad_ids
      FROM unnest(notify_one_v1.user_ids) AS u (id) WHERE length(u.id) NOT BETWEEN 1 AND 255;
    IF bad_ids > 0 THEN
        PERFORM pgbell.refuse_input_v1(tpl.kind, 'bad_ids', best_effort, bad_ids);
    END IF;
    eff := coalesce(notify_one_v1.priority, tpl.priority);
    data := coalesce(notify_one_v1.data, '{}');

    out := pgbell.render_one_v1(tpl.title, data);
    title := out.rendered;
    IF cardinality(out.missing) > 0 THEN
        PERFORM pgbell.report_problem_v2(tpl.kind, 'title', 'missing_data', out.missing, 1);
    END IF;
    out := pgbell.render_one_v1(tpl.body, data);
    body := out.rendered;
    IF cardinality(out.missing) > 0 THEN
        PERFORM pgbell.report_problem_v2(tpl.kind, 'body', 'missing_data', out.missing, 1);
    END IF;
    out := pgbell.render_one_v1(tpl.action_url, data);
    url := out.rendered;
    IF cardinality(out.missing) > 0 THEN
        PERFORM pgbell.report_problem_v2(tpl.kind, 'action_url', 'missing_data', out.missing, 1);
    END IF;
    IF tpl.action_url IS NULL THEN
        url := NULL;
    ELSIF NOT pgbell.action_url_ok_v1(url) THEN
        PERFORM pgbell.report_problem_v2(tpl.kind, 'action_url', 'invalid_action_url', '{}', 1);
        url := NULL;
    END IF;

    INSERT INTO pgbell.notifications (user_id, kind, title, body, priority, action_url, data)
    SELECT r.id, tpl.kind, title, body, eff, url, data
      FROM (SELECT u.id FROM unnest(notify_one_v1.user_ids) AS u (id)
            UNION
            SELECT m.id FROM unnest(notify_one_v1.roles) AS g (role),
                             pgbell.role_members(g.role) AS m (id)) AS r
      LEFT JOIN pgbell.global_preferences gp ON gp.user_id = r.id
      LEFT JOIN pgbell.preferences p ON p.user_id = r.id AND p.kind = tpl.kind
     WHERE r.id IS NOT NULL
       AND (NOT best_effort OR length(r.id) BETWEEN 1 AND 255)
       AND (eff = 'urgent'
            OR (NOT coalesce(gp.muted, false)
                AND NOT coalesce(p.muted, false)
                AND eff >= coalesce(p.min_priority, gp.min_priority, 'low')))
     ORDER BY r.id;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END;
$$;

COMMENT ON FUNCTION pgbell.notify_one_v1(text, text[], text[], jsonb, pgbell.priority, boolean) IS
    'One event of pgbell.notify_many without the JSON: pgbell.notify, and triggers whose statement wrote one row (best_effort), call it.';
REVOKE ALL ON FUNCTION pgbell.notify_one_v1(text, text[], text[], jsonb, pgbell.priority, boolean) FROM PUBLIC;

CREATE OR REPLACE FUNCTION pgbell.notify(
    kind     text,
    user_ids text[] DEFAULT NULL,
    roles    text[] DEFAULT NULL,
    data     jsonb DEFAULT '{}',
    priority pgbell.priority DEFAULT NULL
) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN pgbell.notify_one_v1(notify.kind, notify.user_ids, notify.roles, notify.data,
                                notify.priority, false);
END;
$$;

COMMENT ON FUNCTION pgbell.notify(text, text[], text[], jsonb, pgbell.priority) IS
    'Public API. Renders the kind''s template with data, targets user_ids (text) and pgbell.role_members() of roles, applies preferences (urgent bypasses mutes), writes one pgbell.notifications row per recipient; servers are woken on commit. Returns the rows written. What pgbell.notify_many does for one event, without its JSON.';
