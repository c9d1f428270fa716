"""A leaner pgbell.notify: templates rendered by one set-based query
(render_v2), pgbell.notify_many for a set of events written with one
INSERT, and no helper call per recipient.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from pgbell.ops.migrate import TRIGGERS_DIR, run_sql, run_sql_file

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Versioned trigger files are never edited: naming them pins this migration's SQL.
TRIGGER_FILES = [
    "011_render_v2.sql",
]


def upgrade() -> None:
    for name in TRIGGER_FILES:
        run_sql_file(TRIGGERS_DIR / name)


def downgrade() -> None:
    run_sql(
        """
        DROP FUNCTION pgbell.render_v2(text[], jsonb[]);
        """
    )
