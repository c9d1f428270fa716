"""The demo's deal trigger calls pgbell.notify_one_v2 for a one-deal
statement, in one query instead of three.

Revision ID: demo_0003
Revises: demo_0002
Depends on: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

from pgbell.ops.migrate import TRIGGERS_DIR, run_sql, run_sql_file

revision = "demo_0003"
down_revision = "demo_0002"
branch_labels = None
depends_on = "0004"


def upgrade() -> None:
    run_sql_file(TRIGGERS_DIR / "demo/102_deal_created_v3.sql")


# what 101_deal_created_v2.sql drops before it creates v2; gone already here
DROPS_V1 = (
    "DROP TRIGGER _100_deal_created_v1 ON public.deals;\nDROP FUNCTION pgbell.deal_created_v1();\n"
)


def downgrade() -> None:
    run_sql(
        """
        DROP TRIGGER _102_deal_created_v3 ON public.deals;
        DROP FUNCTION pgbell.deal_created_v3();
        """
    )
    v2 = (TRIGGERS_DIR / "demo/101_deal_created_v2.sql").read_text()
    if DROPS_V1 not in v2:
        raise RuntimeError("101_deal_created_v2.sql no longer starts by dropping v1")
    run_sql(v2.replace(DROPS_V1, ""))
