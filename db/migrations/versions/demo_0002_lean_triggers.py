"""The demo's triggers hand each statement's rows to pgbell.notify_many:
one call and one INSERT into pgbell.notifications per statement, and no
subtransaction (best_effort instead of an EXCEPTION block).

Revision ID: demo_0002
Revises: demo_0001
Depends on: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from pgbell.ops.migrate import TRIGGERS_DIR, run_sql, run_sql_file

revision = "demo_0002"
down_revision = "demo_0001"
branch_labels = None
depends_on = "0002"

TRIGGER_FILES = [
    "demo/101_deal_created_v2.sql",
    "demo/111_payment_received_v2.sql",
]


def upgrade() -> None:
    for name in TRIGGER_FILES:
        run_sql_file(TRIGGERS_DIR / name)


def downgrade() -> None:
    run_sql(
        """
        DROP TRIGGER _101_deal_created_v2 ON public.deals;
        DROP TRIGGER _111_payment_received_v2 ON public.payments;
        DROP FUNCTION pgbell.deal_created_v2(), pgbell.payment_received_v2();
        """
    )
    for name in ("demo/100_deal_created_v1.sql", "demo/110_payment_received_v1.sql"):
        run_sql_file(TRIGGERS_DIR / name)
    run_sql(
        """
        COMMENT ON TABLE public.deals IS 'pgbell demo: a new deal notifies its owner and every'
            ' manager (trigger _100_deal_created_v1).';
        COMMENT ON TABLE public.payments IS 'pgbell demo: a payment notifies the deal''s owner'
            ' (trigger _110_payment_received_v1).';
        """
    )
