-- pgbell.notify(kind, user_ids, roles, data, priority) -> rows written
--
-- The public SQL API: any writer (a trigger, a REST handler, a psql script)
-- calls it inside its own transaction. It renders the kind's template from
-- pgbell.templates with `data`, expands `roles` with pgbell.role_members(),
-- adds `user_ids` (the application's user ids, as text), drops recipients
-- whose preferences mute the kind or ask for a higher priority (urgent is
-- always delivered), and inserts one row per recipient into
-- pgbell.notifications. Those rows wake the servers through the
-- _900_wake_servers_v1 trigger when the transaction commits.
--
-- SECURITY DEFINER with a pinned search_path: it runs as pgbell's owner, so
-- a writer needs EXECUTE on it (the role pgbell_writer) and nothing else in
-- the schema; it cannot read pgbell.users or insert rows of its own making.
-- Raises only on its caller's own invalid input: an unknown kind, or a
-- recipient id that is empty or longer than 255 characters (NULL ids are
-- skipped, so a nullable assignee column can be passed as it is).

CREATE FUNCTION pgbell.notify(
    kind     text,
    user_ids text[] DEFAULT NULL,
    roles    text[] DEFAULT NULL,
    data     jsonb DEFAULT '{}',
    priority pgbell.priority DEFAULT NULL
) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tpl     pgbell.templates;
    eff     pgbell.priority;
    title   record;
    body    record;
    url     record;
    action  text;
    written integer;
BEGIN
    SELECT * INTO tpl FROM pgbell.templates t WHERE t.kind = notify.kind;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgbell.notify: unknown notification kind %', quote_literal(notify.kind)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Add a template first: INSERT INTO pgbell.templates (kind, title, body) VALUES (...)';
    END IF;
    IF EXISTS (SELECT FROM unnest(notify.user_ids) AS r (id) WHERE length(r.id) NOT BETWEEN 1 AND 255) THEN
        RAISE EXCEPTION 'pgbell.notify: a recipient id must be 1 to 255 characters'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'user_ids are the application''s user ids as text, e.g. ARRAY[owner_id::text]';
    END IF;
    eff := coalesce(notify.priority, tpl.priority);
    data := coalesce(notify.data, '{}');

    title := pgbell.render_v1(tpl.title, data);
    body := pgbell.render_v1(tpl.body, data);
    url := pgbell.render_v1(tpl.action_url, data);
    PERFORM pgbell.report_problem_v1(tpl.kind, f.field, 'missing_data', f.missing)
       FROM (VALUES ('title', title.missing), ('body', body.missing), ('action_url', url.missing))
            AS f (field, missing)
      WHERE cardinality(f.missing) > 0;
    IF tpl.action_url IS NOT NULL THEN
        action := url.rendered;
        IF NOT pgbell.action_url_ok_v1(action) THEN
            PERFORM pgbell.report_problem_v1(tpl.kind, 'action_url', 'invalid_action_url', '{}');
            action := NULL;
        END IF;
    END IF;

    INSERT INTO pgbell.notifications (user_id, kind, title, body, priority, action_url, data)
    SELECT r.id, tpl.kind, title.rendered, body.rendered, eff, action, data
      FROM (SELECT u.id FROM unnest(notify.user_ids) AS u (id)
            UNION
            SELECT m.id FROM unnest(notify.roles) AS g (role),
                             pgbell.role_members(g.role) AS m (id)) AS r
      LEFT JOIN pgbell.global_preferences gp ON gp.user_id = r.id
      LEFT JOIN pgbell.preferences p ON p.user_id = r.id AND p.kind = tpl.kind
     WHERE r.id IS NOT NULL
       AND (eff = 'urgent'
            OR (NOT coalesce(gp.muted, false)
                AND NOT coalesce(p.muted, false)
                AND eff >= coalesce(p.min_priority, gp.min_priority, 'low')))
     ORDER BY r.id;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END;
$$;

COMMENT ON FUNCTION pgbell.notify(text, text[], text[], jsonb, pgbell.priority) IS
    'Public API. Renders the kind''s template with data, targets user_ids (text) and pgbell.role_members() of roles, applies preferences (urgent bypasses mutes), writes one pgbell.notifications row per recipient; servers are woken on commit. Returns the rows written.';
REVOKE ALL ON FUNCTION pgbell.notify(text, text[], text[], jsonb, pgbell.priority) FROM PUBLIC;
