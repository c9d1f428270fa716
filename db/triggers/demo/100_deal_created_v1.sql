-- Demo domain (`pgbell migrate --demo`).
-- Trigger _100_deal_created_v1 on public.deals, AFTER INSERT, FOR EACH STATEMENT.
--
-- For every inserted deal: pgbell.notify('deal_created') to the deal's owner
-- and to every user with the role 'manager', with data {deal_id, title,
-- amount, owner_id}. One trigger call per statement (the inserted rows come
-- as a transition table), so a bulk INSERT ... SELECT stays one call.
-- Sends nothing itself: the notification rows wake the servers on commit.
-- A failure inside pgbell (say, a DBA deleted the template) becomes a
-- WARNING: the writer's deal is never rolled back because of pgbell.

CREATE FUNCTION pgbell.deal_created_v1() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pgbell.notify(
        'deal_created',
        user_ids => ARRAY[d.owner_id::text],
        roles => ARRAY['manager'],
        data => jsonb_build_object('deal_id', d.id, 'title', d.title, 'amount', d.amount,
                                   'owner_id', d.owner_id))
       FROM new_deals d
      ORDER BY d.id;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'pgbell: deal_created notifications not written: % (%)', SQLERRM, SQLSTATE;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION pgbell.deal_created_v1() IS
    'Notifies a new deal''s owner and every manager (kind deal_created) through pgbell.notify.';

CREATE TRIGGER _100_deal_created_v1
    AFTER INSERT ON public.deals
    REFERENCING NEW TABLE AS new_deals
    FOR EACH STATEMENT EXECUTE FUNCTION pgbell.deal_created_v1();

REVOKE ALL ON FUNCTION pgbell.deal_created_v1() FROM PUBLIC;

COMMENT ON TRIGGER _100_deal_created_v1 ON public.deals IS
    'After INSERT on deals: deal_created to the owner and every manager.';
