"""The wake-up's locks spread over 16 slots (903_wake_servers_v4.sql): a
writer checks in its session's slot, so writers no longer collide on one
probe lock and send NOTIFYs no server needed; servers fall asleep holding
every slot. Servers older than this migration sleep in slot 0 only: restart
them after it (docs/architecture.md "Limits we know of").

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

from pgbell.ops.migrate import TRIGGERS_DIR, run_sql, run_sql_file

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# what 902_wake_servers_v3.sql drops before it creates v3; gone already here
DROPS_V2 = (
    "DROP TRIGGER _901_wake_servers_v2 ON pgbell.notifications;\n"
    "DROP FUNCTION pgbell.wake_servers_v2();\n"
)


def upgrade() -> None:
    run_sql_file(TRIGGERS_DIR / "903_wake_servers_v4.sql")


def downgrade() -> None:
    run_sql(
        """
        DROP TRIGGER _903_wake_servers_v4 ON pgbell.notifications;
        DROP FUNCTION pgbell.wake_servers_v4();
        """
    )
    v3 = (TRIGGERS_DIR / "902_wake_servers_v3.sql").read_text(encoding="utf-8")
    if DROPS_V2 not in v3:
        raise RuntimeError("902_wake_servers_v3.sql no longer drops v2 before creating v3")
    run_sql(v3.replace(DROPS_V2, ""))
