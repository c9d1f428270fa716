"""The demo domain, on its own branch ("demo"): public.deals and
public.payments, their templates, and the triggers that notify through
pgbell.notify(). Installed by `pgbell migrate --demo` only.

Revision ID: demo_0001
Revises:
Depends on: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from pathlib import Path

from pgbell.ops.migrate import TRIGGERS_DIR, run_sql, run_sql_file

revision = "demo_0001"
down_revision = None
branch_labels = ("demo",)
depends_on = "0001"

TRIGGER_FILES = [
    "demo/100_deal_created_v1.sql",
    "demo/110_payment_received_v1.sql",
    "demo/190_demo_grant_roles_v1.sql",
]


def upgrade() -> None:
    run_sql_file(Path(__file__).with_suffix(".sql"))
    for name in TRIGGER_FILES:
        run_sql_file(TRIGGERS_DIR / name)
    run_sql("SELECT pgbell.demo_grant_roles_v1();")


def downgrade() -> None:
    run_sql(
        """
        DROP TABLE public.payments, public.deals;
        DROP FUNCTION pgbell.deal_created_v1(), pgbell.payment_received_v1(),
                      pgbell.demo_grant_roles_v1();
        DELETE FROM pgbell.templates WHERE kind IN ('deal_created', 'payment_received');
        """
    )
