-- The demo domain at its migration head, in the application's schema
-- (public): what `pgbell migrate --demo` installs beside pgbell's own
-- schema (db/schema.sql). Its triggers are in db/triggers/demo/.
-- tests/test_schema_drift.py checks that the migrations produce exactly this.

-- Deals and payments reference pgbell's own users: the demo runs in
-- standalone mode (pgbell's login), so its recipients are users.id::text.
CREATE TABLE public.deals (
    id         bigserial PRIMARY KEY,
    title      text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    amount     numeric(14, 2) NOT NULL CHECK (amount >= 0),
    owner_id   bigint NOT NULL REFERENCES pgbell.users (id),
    created_by bigint REFERENCES pgbell.users (id),
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE public.deals IS 'pgbell demo: a new deal notifies its owner and every manager (trigger _101_deal_created_v2).';

CREATE TABLE public.payments (
    id         bigserial PRIMARY KEY,
    deal_id    bigint NOT NULL REFERENCES public.deals (id) ON DELETE CASCADE,
    amount     numeric(14, 2) NOT NULL CHECK (amount > 0),
    created_by bigint REFERENCES pgbell.users (id),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_deal_idx ON public.payments (deal_id);
COMMENT ON TABLE public.payments IS 'pgbell demo: a payment notifies the deal''s owner (trigger _111_payment_received_v2).';

INSERT INTO pgbell.templates (kind, title, body, action_url, priority, description) VALUES
    ('deal_created', 'New deal: {title}', '{title}, {amount:money}', '/deals/{deal_id}', 'normal',
     'A deal was created: its owner and every manager hear of it.'),
    ('payment_received', 'Payment received: {title}', '{amount:money} received for {title}', '/deals/{deal_id}', 'high',
     'A payment was recorded against a deal: the deal''s owner hears of it.');
