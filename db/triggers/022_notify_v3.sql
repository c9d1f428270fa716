-- pgbell.notify_one_v2(kind, user_ids, roles, data, priority, best_effort) -> rows written
-- pgbell.notify(kind, user_ids, roles, data, priority) -> rows written (v3 body)
--
-- What pgbell.notify_one_v1 does, with fewer statements and cheaper ones,
-- because a writer pays for every one of them in every transaction that
-- notifies (PL/pgSQL prepares each expression again once per transaction):
-- - templates are rendered by pgbell.render_one_v2 (no regular expression
--   with capture groups, no SET clause);
-- - the recipient ids are counted for bad ones only when one may be bad
--   (an empty id, or more than 255 characters in all), not by a query on
--   every call;
-- - preferences are read by index, recipient by recipient (NOT EXISTS),
--   whatever the size of the preference tables and their statistics,
--   where v1's joins could build a hash of a whole table for six rows;
-- - pgbell.action_url_ok_v1 and the installed pgbell.role_members() have
--   no SET clause any more (migration 0004), so their SQL is inlined into
--   the statements that call them instead of being planned on every call.
-- Same results, warnings and errors as notify_one_v1 (tests/test_notify*.py,
-- tests/test_preferences*.py, tests/test_sql_api*.py).
--
-- Who gets a row: the ids in user_ids (text; NULL skipped) and those
-- pgbell.role_members() returns for each role, once each, in id order;
-- urgent always; otherwise not when the user muted the kind
-- (pgbell.preferences) or everything (pgbell.global_preferences), nor when
-- the priority is below the user's minimum for the kind, or else below the
-- user's global minimum.
--
-- pgbell.notify (public API, unchanged signature and behaviour) and the
-- demo's deal trigger for a one-deal statement call it. Private.

CREATE FUNCTION pgbell.notify_one_v2(
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
    SELECT * INTO tpl FROM pgbell.templates t WHERE t.kind = notify_one_v2.kind;
    IF NOT FOUND THEN
        PERFORM pgbell.refuse_input_v1(notify_one_v2.kind, 'unknown_kind', best_effort, 0);
        RETURN 0;
    END IF;
    -- no id is empty and all of them hold 255 characters at most: none is bad
    IF array_position(notify_one_v2.user_ids, '') IS NOT NULL
       OR length(array_to_string(notify_one_v2.user_ids, '')) > 255 THEN
        SELECT count(*) INTO bad_ids
          FROM unnest(notify_one_v2.user_ids) AS u (id) WHERE length(u.id) NOT BETWEEN 1 AND 255;
        IF bad_ids > 0 THEN
            PERFORM pgbell.refuse_input_v1(tpl.kind, 'bad_ids', best_effort, bad_ids);
        END IF;
    END IF;
    eff := coalesce(notify_one_v2.priority, tpl.priority);
    data := coalesce(notify_one_v2.data, '{}');

    out := pgbell.render_one_v2(tpl.title, data);
    title := out.rendered;
    IF cardinality(out.missing) > 0 THEN
        PERFORM pgbell.report_problem_v2(tpl.kind, 'title', 'missing_data', out.missing, 1);
    END IF;
    out := pgbell.render_one_v2(tpl.body, data);
    body := out.rendered;
    IF cardinality(out.missing) > 0 THEN
        PERFORM pgbell.report_problem_v2(tpl.kind, 'body', 'missing_data', out.missing, 1);
    END IF;
    IF tpl.action_url IS NOT NULL THEN
        out := pgbell.render_one_v2(tpl.action_url, data);
        url := out.rendered;
        IF cardinality(out.missing) > 0 THEN
            PERFORM pgbell.report_problem_v2(tpl.kind, 'action_url', 'missing_data', out.missing, 1);
        END IF;
        IF NOT pgbell.action_url_ok_v1(url) THEN
            PERFORM pgbell.report_problem_v2(tpl.kind, 'action_url', 'invalid_action_url', '{}', 1);
            url := NULL;
        END IF;
    END IF;

    INSERT INTO pgbell.notifications (user_id, kind, title, body, priority, action_url, data)
    SELECT r.id, tpl.kind, title, body, eff, url, data
      FROM (SELECT u.id FROM unnest(notify_one_v2.user_ids) AS u (id)
            UNION
            SELECT m.id FROM unnest(notify_one_v2.roles) AS g (role),
                             pgbell.role_members(g.role) AS m (id)) AS r
     WHERE r.id IS NOT NULL
       AND (NOT best_effort OR length(r.id) BETWEEN 1 AND 255)
       AND (eff = 'urgent'
            OR (NOT EXISTS (SELECT FROM pgbell.preferences p
                             WHERE p.user_id = r.id AND p.kind = tpl.kind
                               AND (p.muted OR eff < p.min_priority))
                AND NOT EXISTS (SELECT FROM pgbell.global_preferences gp
                                 WHERE gp.user_id = r.id
                                   AND (gp.muted
                                        OR (eff < gp.min_priority
                                            -- a minimum for the kind wins over the global one
                                            AND NOT EXISTS (SELECT FROM pgbell.preferences p
                                                             WHERE p.user_id = r.id
                                                               AND p.kind = tpl.kind
                                                               AND p.min_priority IS NOT NULL))))))
     ORDER BY r.id;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END;
$$;

COMMENT ON FUNCTION pgbell.notify_one_v2(text, text[], text[], jsonb, pgbell.priority, boolean) IS
    'One event of pgbell.notify_many without the JSON, as notify_one_v1 with fewer and cheaper statements: pgbell.notify, and triggers whose statement wrote one row (best_effort), call it.';
REVOKE ALL ON FUNCTION pgbell.notify_one_v2(text, text[], text[], jsonb, pgbell.priority, boolean) FROM PUBLIC;

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
    RETURN pgbell.notify_one_v2(notify.kind, notify.user_ids, notify.roles, notify.data,
                                notify.priority, false);
END;
$$;

COMMENT ON FUNCTION pgbell.notify(text, text[], text[], jsonb, pgbell.priority) IS
    'Public API. Renders the kind''s template with data, targets user_ids (text) and pgbell.role_members() of roles, applies preferences (urgent bypasses mutes), writes one pgbell.notifications row per recipient; servers are woken on commit. Returns the rows written. What pgbell.notify_many does for one event, without its JSON.';
