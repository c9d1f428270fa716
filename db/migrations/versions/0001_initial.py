"""pgbell's own schema: templates, preferences, notifications keyed by the
application's user ids (text), pgbell's users for standalone mode, the SQL
API (pgbell.notify, pgbell.role_members), the wake-up and read-state
triggers, and the grants of the roles pgbell_writer and pgbell_server.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from pathlib import Path

from pgbell.ops.migrate import TRIGGERS_DIR, run_sql, run_sql_file

revision = "0001"
down_revision = None
branch_labels = ("pgbell",)
depends_on = None

# Versioned trigger files are never edited: a changed body is a new _vN file
# applied by a new migration, so naming them here pins this migration's SQL.
TRIGGER_FILES = [
    "010_render_v1.sql",
    "015_report_problem_v1.sql",
    "016_action_url_ok_v1.sql",
    "018_role_members.sql",
    "020_notify_v1.sql",
    "900_wake_servers_v1.sql",
    "910_state_changes_v1.sql",
    "920_tokens_revoked_v1.sql",
    "980_grant_roles_v1.sql",
    "990_rules_view_v1.sql",
]


def upgrade() -> None:
    run_sql_file(Path(__file__).with_suffix(".sql"))
    for name in TRIGGER_FILES:
        run_sql_file(TRIGGERS_DIR / name)
    run_sql(
        "COMMENT ON TABLE pgbell.alembic_version IS"
        " 'The migrations applied by pgbell migrate (alembic); pgbell serve reads it.';"
        " SELECT pgbell.grant_roles_v1();"
    )


def downgrade() -> None:
    # Everything but alembic's own version table, which alembic still needs
    # to record the downgrade. The roles stay: they belong to the cluster.
    run_sql(
        """
        DROP VIEW pgbell.rules;
        DROP TABLE pgbell.notifications, pgbell.state_changes, pgbell.preferences,
                   pgbell.global_preferences, pgbell.template_problems, pgbell.templates,
                   pgbell.users;
        DROP FUNCTION pgbell.notify(text, text[], text[], jsonb, pgbell.priority),
                      pgbell.role_members(text), pgbell.render_v1(text, jsonb),
                      pgbell.report_problem_v1(text, text, text, text[]),
                      pgbell.action_url_ok_v1(text), pgbell.wake_servers_v1(),
                      pgbell.state_changes_v1(), pgbell.tokens_revoked_v1(),
                      pgbell.grant_roles_v1();
        DROP TYPE pgbell.priority;
        """
    )
