-- Demo domain (`pgbell migrate --demo`).
-- Trigger _111_payment_received_v2 on public.payments, AFTER INSERT, FOR EACH STATEMENT.
-- Replaces _110_payment_received_v1 (dropped here with its function).
--
-- For every inserted payment: a payment_received notification to the owner
-- of its deal, with data {deal_id, payment_id, title, amount}; the
-- template's priority is high. The statement's payments go to
-- pgbell.notify_many as one array of events: one call, one INSERT into
-- pgbell.notifications. Sends nothing itself: the notification rows wake
-- the servers on commit. best_effort => true: what pgbell can foresee
-- going wrong becomes a WARNING and the writer's payment commits, without
-- a subtransaction per statement.

DROP TRIGGER _110_payment_received_v1 ON public.payments;
DROP FUNCTION pgbell.payment_received_v1();

CREATE FUNCTION pgbell.payment_received_v2() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pgbell.notify_many(
        'payment_received',
        (SELECT jsonb_agg(jsonb_build_object(
                    'user_ids', jsonb_build_array(d.owner_id::text),
                    'data', jsonb_build_object('deal_id', d.id, 'payment_id', p.id, 'title', d.title,
                                               'amount', p.amount))
                    ORDER BY p.id)
           FROM new_payments p
           JOIN public.deals d ON d.id = p.deal_id),
        best_effort => true);
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION pgbell.payment_received_v2() IS
    'Notifies the deal''s owner of each payment (kind payment_received, high) through one pgbell.notify_many call per statement.';

CREATE TRIGGER _111_payment_received_v2
    AFTER INSERT ON public.payments
    REFERENCING NEW TABLE AS new_payments
    FOR EACH STATEMENT EXECUTE FUNCTION pgbell.payment_received_v2();

REVOKE ALL ON FUNCTION pgbell.payment_received_v2() FROM PUBLIC;

COMMENT ON TRIGGER _111_payment_received_v2 ON public.payments IS
    'After INSERT on payments: payment_received to the deal''s owner.';
COMMENT ON TABLE public.payments IS 'pgbell demo: a payment notifies the deal''s owner (trigger _111_payment_received_v2).';
