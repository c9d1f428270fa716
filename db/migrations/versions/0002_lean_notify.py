"""A leaner pgbell.notify: templates rendered by one set-based query
(render_v2), pgbell.notify_many for a set of events written with one
INSERT, template problems reported once per statement (report_problem_v2),
and pgbell_writer granted the set form too (grant_roles_v2).

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
    "017_report_problem_v2.sql",
    "021_notify_v2.sql",
    "981_grant_roles_v2.sql",
]


def upgrade() -> None:
    for name in TRIGGER_FILES:
        run_sql_file(TRIGGERS_DIR / name)
    run_sql("SELECT pgbell.grant_roles_v2();")


def downgrade() -> None:
    # pgbell.notify goes back to its v1 body, created anew from its file; its
    # EXECUTE for pgbell_writer is granted again by grant_roles_v1.
    run_sql(
        """
        DROP FUNCTION pgbell.grant_roles_v2(),
                      pgbell.notify(text, text[], text[], jsonb, pgbell.priority),
                      pgbell.notify_many(text, jsonb, pgbell.priority, boolean),
                      pgbell.notify_one_v1(text, text[], text[], jsonb, pgbell.priority, boolean),
                      pgbell.refuse_input_v1(text, text, boolean, bigint),
                      pgbell.render_one_v1(text, jsonb),
                      pgbell.report_problem_v2(text, text, text, text[], bigint),
                      pgbell.render_v2(text[], jsonb[]);
        """
    )
    run_sql_file(TRIGGERS_DIR / "020_notify_v1.sql")
    run_sql("SELECT pgbell.grant_roles_v1();")
