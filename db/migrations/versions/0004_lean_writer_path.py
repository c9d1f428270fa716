"""A cheaper writer's path: pgbell.notify renders with render_one_v2 and
reads preferences by index (notify_one_v2), and the SQL helpers it calls for
every notification lose their SET clause so that they are inlined
(019_inline_helpers_v1.sql; an application's own pgbell.role_members() is
left as it is); the wake-up trigger makes its check itself instead of
calling pgbell.wake_v2() (902_wake_servers_v3.sql).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from pgbell.ops.migrate import TRIGGERS_DIR, run_sql, run_sql_file

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TRIGGER_FILES = [
    "012_render_one_v2.sql",
    "019_inline_helpers_v1.sql",
    "022_notify_v3.sql",
    "902_wake_servers_v3.sql",
]


def upgrade() -> None:
    for name in TRIGGER_FILES:
        run_sql_file(TRIGGERS_DIR / name)


def downgrade() -> None:
    # pgbell.notify goes back to its v2 body (notify_one_v1), as 0002 left
    # it; the helpers get their SET clause back, role_members only if it is
    # still the installed one.
    run_sql(
        """
        DROP TRIGGER _902_wake_servers_v3 ON pgbell.notifications;
        DROP FUNCTION pgbell.wake_servers_v3();
        CREATE FUNCTION pgbell.wake_servers_v2() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER
        SET search_path = pg_catalog, pg_temp AS $$
        BEGIN
            PERFORM pgbell.wake_v2();
            RETURN NULL;
        END;
        $$;
        COMMENT ON FUNCTION pgbell.wake_servers_v2() IS
            'After INSERT on notifications: pgbell.wake_v2(), a NOTIFY only if a server'
            ' may be asleep.';
        REVOKE ALL ON FUNCTION pgbell.wake_servers_v2() FROM PUBLIC;
        CREATE TRIGGER _901_wake_servers_v2
            AFTER INSERT ON pgbell.notifications
            FOR EACH STATEMENT EXECUTE FUNCTION pgbell.wake_servers_v2();
        COMMENT ON TRIGGER _901_wake_servers_v2 ON pgbell.notifications IS
            'After INSERT on notifications: every pgbell server sees the rows'
            ' (a NOTIFY on pgbell_v1 only if one may be asleep).';
        CREATE OR REPLACE FUNCTION pgbell.notify(
            kind text, user_ids text[] DEFAULT NULL, roles text[] DEFAULT NULL,
            data jsonb DEFAULT '{}', priority pgbell.priority DEFAULT NULL
        ) RETURNS integer
        LANGUAGE plpgsql SECURITY DEFINER
        SET search_path = pg_catalog, pg_temp AS $$
        BEGIN
            RETURN pgbell.notify_one_v1(notify.kind, notify.user_ids, notify.roles, notify.data,
                                        notify.priority, false);
        END;
        $$;
        DROP FUNCTION pgbell.notify_one_v2(text, text[], text[], jsonb, pgbell.priority, boolean),
                      pgbell.render_one_v2(text, jsonb);
        ALTER FUNCTION pgbell.action_url_ok_v1(text) SET search_path = pg_catalog, pg_temp;
        DO $$
        BEGIN
            IF EXISTS (
                SELECT FROM pg_proc p
                 WHERE p.oid = 'pgbell.role_members(text)'::regprocedure
                   AND p.proconfig IS NULL
                   AND btrim(p.prosrc, E' \\n')
                       = 'SELECT u.id::text FROM pgbell.users u'
                         ' WHERE role_members.role = ANY (u.roles)')
            THEN
                ALTER FUNCTION pgbell.role_members(text) SET search_path = pg_catalog, pg_temp;
            END IF;
        END;
        $$;
        """
    )
