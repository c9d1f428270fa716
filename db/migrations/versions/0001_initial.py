"""pgbell schema v1: users, templates, preferences, notifications, the demo
deals and payments, and the v1 triggers and SQL API.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from pathlib import Path

from pgbell.ops.migrate import TRIGGERS_DIR, run_sql, run_sql_file

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Versioned trigger files are never edited: a changed body is a new _vN file
# applied by a new migration, so naming them here pins this migration's SQL.
TRIGGER_FILES = [
    "010_render_v1.sql",
    "015_report_missing_v1.sql",
    "020_notify_v1.sql",
    "100_deal_created_v1.sql",
    "110_payment_received_v1.sql",
    "900_wake_servers_v1.sql",
    "910_state_changes_v1.sql",
    "990_rules_view_v1.sql",
]


def upgrade() -> None:
    run_sql_file(Path(__file__).with_suffix(".sql"))
    for name in TRIGGER_FILES:
        run_sql_file(TRIGGERS_DIR / name)


def downgrade() -> None:
    run_sql("DROP TABLE public.payments, public.deals; DROP SCHEMA pgbell CASCADE;")
