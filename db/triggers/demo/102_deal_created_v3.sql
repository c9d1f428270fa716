-- Demo domain (`pgbell migrate --demo`).
-- Trigger _102_deal_created_v3 on public.deals, AFTER INSERT, FOR EACH STATEMENT.
-- Replaces _101_deal_created_v2 (dropped here with its function).
--
-- For every inserted deal: a deal_created notification to the deal's owner
-- and to every user with the role 'manager', with data {deal_id, title,
-- amount, owner_id}. As v2, with one statement fewer: a statement of one
-- deal, the usual case, is one query that calls pgbell.notify_one_v2 (no
-- JSON to build and take apart); any other goes to pgbell.notify_many as
-- one array of events, so a bulk INSERT ... SELECT of N deals is one call
-- and one INSERT into pgbell.notifications.
-- Sends nothing itself: the notification rows wake the servers on commit.
-- best_effort => true: what pgbell can foresee going wrong (say, a DBA
-- deleted the template) becomes a WARNING and the writer's deal commits,
-- without a subtransaction.

DROP TRIGGER _101_deal_created_v2 ON public.deals;
DROP FUNCTION pgbell.deal_created_v2();

CREATE FUNCTION pgbell.deal_created_v3() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pgbell.notify_one_v2(
                'deal_created', ARRAY[d.owner_id::text], ARRAY['manager'],
                jsonb_build_object('deal_id', d.id, 'title', d.title, 'amount', d.amount,
                                   'owner_id', d.owner_id),
                NULL, true)
       FROM new_deals d
      WHERE (SELECT count(*) FROM new_deals) = 1;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM pgbell.notify_many(
        'deal_created',
        (SELECT jsonb_agg(jsonb_build_object(
                    'user_ids', jsonb_build_array(d.owner_id::text),
                    'roles', '["manager"]'::jsonb,
                    'data', jsonb_build_object('deal_id', d.id, 'title', d.title, 'amount', d.amount,
                                               'owner_id', d.owner_id))
                    ORDER BY d.id)
           FROM new_deals d),
        best_effort => true);
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION pgbell.deal_created_v3() IS
    'Notifies each new deal''s owner and every manager (kind deal_created) through one call per statement (pgbell.notify_one_v2 for one deal, pgbell.notify_many for more).';

CREATE TRIGGER _102_deal_created_v3
    AFTER INSERT ON public.deals
    REFERENCING NEW TABLE AS new_deals
    FOR EACH STATEMENT EXECUTE FUNCTION pgbell.deal_created_v3();

REVOKE ALL ON FUNCTION pgbell.deal_created_v3() FROM PUBLIC;

COMMENT ON TRIGGER _102_deal_created_v3 ON public.deals IS
    'After INSERT on deals: deal_created to the owner and every manager.';
COMMENT ON TABLE public.deals IS 'pgbell demo: a new deal notifies its owner and every manager (trigger _102_deal_created_v3).';
