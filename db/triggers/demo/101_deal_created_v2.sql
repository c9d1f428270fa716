-- Demo domain (`pgbell migrate --demo`).
-- Trigger _101_deal_created_v2 on public.deals, AFTER INSERT, FOR EACH STATEMENT.
-- Replaces _100_deal_created_v1 (dropped here with its function).
--
-- For every inserted deal: a deal_created notification to the deal's owner
-- and to every user with the role 'manager', with data {deal_id, title,
-- amount, owner_id}. The statement's deals (a transition table) go to
-- pgbell.notify_many as one array of events, so a bulk INSERT ... SELECT
-- of N deals is one call and one INSERT into pgbell.notifications; a
-- statement of one deal, the usual case, goes to pgbell.notify_one_v1,
-- which needs no JSON.
-- Sends nothing itself: the notification rows wake the servers on commit.
-- best_effort => true: what pgbell can foresee going wrong (say, a DBA
-- deleted the template) becomes a WARNING and the writer's deal commits,
-- without the subtransaction per statement that v1's EXCEPTION block cost.

DROP TRIGGER _100_deal_created_v1 ON public.deals;
DROP FUNCTION pgbell.deal_created_v1();

CREATE FUNCTION pgbell.deal_created_v2() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    deal public.deals;
BEGIN
    IF (SELECT count(*) FROM new_deals) = 1 THEN
        -- the usual case, one deal: no JSON to build and take apart
        SELECT * INTO deal FROM new_deals;
        PERFORM pgbell.notify_one_v1(
            'deal_created', ARRAY[deal.owner_id::text], ARRAY['manager'],
            jsonb_build_object('deal_id', deal.id, 'title', deal.title, 'amount', deal.amount,
                               'owner_id', deal.owner_id),
            NULL, true);
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

COMMENT ON FUNCTION pgbell.deal_created_v2() IS
    'Notifies each new deal''s owner and every manager (kind deal_created) through one call per statement (pgbell.notify_many, or pgbell.notify_one_v1 for one deal).';

CREATE TRIGGER _101_deal_created_v2
    AFTER INSERT ON public.deals
    REFERENCING NEW TABLE AS new_deals
    FOR EACH STATEMENT EXECUTE FUNCTION pgbell.deal_created_v2();

REVOKE ALL ON FUNCTION pgbell.deal_created_v2() FROM PUBLIC;

COMMENT ON TRIGGER _101_deal_created_v2 ON public.deals IS
    'After INSERT on deals: deal_created to the owner and every manager.';
COMMENT ON TABLE public.deals IS 'pgbell demo: a new deal notifies its owner and every manager (trigger _101_deal_created_v2).';
