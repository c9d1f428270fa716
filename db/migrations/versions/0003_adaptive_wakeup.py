"""Adaptive wake-up: writers send pg_notify only when a pgbell server may be
asleep (pgbell.wake_v2(), docs/architecture.md "Adaptive wake-up"); the
wake-up, read-state and token triggers call it instead of pg_notify.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from pgbell.ops.migrate import TRIGGERS_DIR, run_sql, run_sql_file

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TRIGGER_FILES = [
    "901_wake_servers_v2.sql",
    "911_state_changes_v2.sql",
    "921_tokens_revoked_v2.sql",
]
REPLACED_FILES = [
    "900_wake_servers_v1.sql",
    "910_state_changes_v1.sql",
    "920_tokens_revoked_v1.sql",
]


def upgrade() -> None:
    for name in TRIGGER_FILES:
        run_sql_file(TRIGGERS_DIR / name)


def downgrade() -> None:
    # Back to a NOTIFY on every write: the v1 files still create exactly
    # what 0001 did, once the v2 objects are out of their way.
    run_sql(
        """
        DROP TRIGGER _901_wake_servers_v2 ON pgbell.notifications;
        DROP TRIGGER _911_state_changes_v2 ON pgbell.notifications;
        DROP TRIGGER _921_tokens_revoked_v2 ON pgbell.users;
        DROP FUNCTION pgbell.wake_servers_v2(), pgbell.state_changes_v2(),
                      pgbell.tokens_revoked_v2(), pgbell.wake_v2();
        """
    )
    for name in REPLACED_FILES:
        run_sql_file(TRIGGERS_DIR / name)
