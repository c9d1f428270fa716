-- pgbell.notify(kind, user_ids, roles, data, priority) -> rows written
--
-- The public SQL API: any writer (a trigger, a REST handler, a psql script)
-- calls it inside its own transaction. It renders the kind's template from
-- pgbell.templates with `data`, expands `roles` to their members, adds
-- `user_ids`, drops recipients whose preferences mute the kind or ask for a
-- higher priority (urgent is always delivered), and inserts one row per
-- recipient into pgbell.notifications. Those rows wake the servers through
-- the _900_wake_servers_v1 trigger when the transaction commits.
-- Raises only on its caller's own invalid input (an unknown kind).

CREATE FUNCTION pgbell.notify(
    kind     text,
    user_ids bigint[] DEFAULT NULL,
    roles    text[] DEFAULT NULL,
    data     jsonb DEFAULT '{}',
    priority pgbell.priority DEFAULT NULL
) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    tpl     pgbell.templates;
    eff     pgbell.priority;
    title   record;
    body    record;
    url     record;
    written integer;
BEGIN
    SELECT * INTO tpl FROM pgbell.templates t WHERE t.kind = notify.kind;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgbell.notify: unknown notification kind %', quote_literal(notify.kind)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Add a template first: INSERT INTO pgbell.templates (kind, title, body) VALUES (...)';
    END IF;
    eff := coalesce(notify.priority, tpl.priority);
    data := coalesce(notify.data, '{}');

    title := pgbell.render_v1(tpl.title, data);
    body := pgbell.render_v1(tpl.body, data);
    url := pgbell.render_v1(tpl.action_url, data);
    PERFORM pgbell.report_missing_v1(tpl.kind, f.field, f.missing)
       FROM (VALUES ('title', title.missing), ('body', body.missing), ('action_url', url.missing))
            AS f (field, missing)
      WHERE cardinality(f.missing) > 0;

    INSERT INTO pgbell.notifications (user_id, kind, title, body, priority, action_url, data)
    SELECT u.id, tpl.kind, title.rendered, body.rendered, eff,
           CASE WHEN tpl.action_url IS NULL THEN NULL ELSE url.rendered END, data
      FROM pgbell.users u
      LEFT JOIN pgbell.global_preferences g ON g.user_id = u.id
      LEFT JOIN pgbell.preferences p ON p.user_id = u.id AND p.kind = tpl.kind
     WHERE (u.id = ANY (coalesce(notify.user_ids, '{}')) OR u.roles && coalesce(notify.roles, '{}'))
       AND (eff = 'urgent'
            OR (NOT coalesce(g.muted, false)
                AND NOT coalesce(p.muted, false)
                AND eff >= coalesce(p.min_priority, g.min_priority, 'low')));
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END;
$$;

COMMENT ON FUNCTION pgbell.notify(text, bigint[], text[], jsonb, pgbell.priority) IS
    'Public API. Renders the kind''s template with data, targets user_ids and members of roles, applies preferences (urgent bypasses mutes), writes one pgbell.notifications row per recipient; servers are woken on commit. Returns the rows written.';
