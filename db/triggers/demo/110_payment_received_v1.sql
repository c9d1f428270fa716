-- Demo domain (`pgbell migrate --demo`).
-- Trigger _110_payment_received_v1 on public.payments, AFTER INSERT, FOR EACH STATEMENT.
--
-- For every inserted payment: pgbell.notify('payment_received') to the
-- owner of its deal, with data {deal_id, payment_id, title, amount}; the
-- template's priority is high. Sends nothing itself: the notification rows
-- wake the servers on commit. A failure inside pgbell becomes a WARNING:
-- the writer's payment is never rolled back because of pgbell.

CREATE FUNCTION pgbell.payment_received_v1() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pgbell.notify(
        'payment_received',
        user_ids => ARRAY[d.owner_id::text],
        data => jsonb_build_object('deal_id', d.id, 'payment_id', p.id, 'title', d.title,
                                   'amount', p.amount))
       FROM new_payments p
       JOIN public.deals d ON d.id = p.deal_id
      ORDER BY p.id;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'pgbell: payment_received notifications not written: % (%)', SQLERRM, SQLSTATE;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION pgbell.payment_received_v1() IS
    'Notifies the deal''s owner of a payment (kind payment_received, high) through pgbell.notify.';

CREATE TRIGGER _110_payment_received_v1
    AFTER INSERT ON public.payments
    REFERENCING NEW TABLE AS new_payments
    FOR EACH STATEMENT EXECUTE FUNCTION pgbell.payment_received_v1();

REVOKE ALL ON FUNCTION pgbell.payment_received_v1() FROM PUBLIC;

COMMENT ON TRIGGER _110_payment_received_v1 ON public.payments IS
    'After INSERT on payments: payment_received to the deal''s owner.';
