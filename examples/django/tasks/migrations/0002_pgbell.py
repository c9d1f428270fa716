"""Wires tasks to pgbell, in the database: a template, a trigger that calls
pgbell.notify() for every new task, and pgbell.role_members() replaced so
that pgbell's roles are Django's staff flag and groups.

pgbell's schema must be there first (`pgbell migrate`); this migration stops
with a message saying so when it is not. Like every migration it is never
edited once released: a changed trigger is a task_assigned_v2 in a new one.
"""

from django.core.management.base import CommandError
from django.db import migrations

# The signature of pgbell's public SQL API since v2 (recipients as text).
NOTIFY_V2_ARGUMENTS = (
    "kind text, user_ids text[], roles text[], data jsonb, priority pgbell.priority"
)


def require_pgbell(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_function_identity_arguments(p.oid) FROM pg_catalog.pg_proc p"
            " JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = 'pgbell' AND p.proname = 'notify'"
        )
        signatures = [row[0] for row in cursor.fetchall()]
    # CommandError: `manage.py migrate` prints the message alone, no traceback
    if not signatures:
        raise CommandError(
            "pgbell.notify() does not exist in this database: install pgbell's schema first"
            " with `pgbell migrate` (same DATABASE_URL), then run `manage.py migrate` again."
        )
    if NOTIFY_V2_ARGUMENTS not in signatures:
        raise CommandError(
            f"pgbell.notify() here takes ({', '.join(signatures)}), not the v2 API"
            f" ({NOTIFY_V2_ARGUMENTS}): upgrade pgbell's schema with `pgbell migrate`."
        )


TEMPLATE = """
INSERT INTO pgbell.templates (kind, title, body, action_url, description)
VALUES ('task_assigned', 'New task: {title}', 'Assigned to {assignee}', '/tasks/{task_id}/',
        'A task of the Django example was created: to its assignee and every staff user.');
"""
DROP_TEMPLATE = "DELETE FROM pgbell.templates WHERE kind = 'task_assigned';"

# Statement-level with a transition table: a bulk_create of 1,000 tasks is
# one trigger call. No exception handler: a task and its notifications
# commit or roll back together, and pgbell.notify only raises on a caller's
# own mistake (an unknown kind), which must not pass silently. It runs with
# the rights of Django's login, which needs EXECUTE on pgbell.notify (the
# role pgbell_writer) and nothing else of pgbell's.
TRIGGER = """
CREATE FUNCTION public.task_assigned_v1() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pgbell.notify(
        'task_assigned',
        user_ids => ARRAY[t.assignee_id::text],
        roles => '{staff}',
        data => jsonb_build_object('task_id', t.id, 'title', t.title,
                                   'assignee', a.username, 'created_by', c.username))
       FROM new_tasks t
       JOIN public.auth_user a ON a.id = t.assignee_id
       LEFT JOIN public.auth_user c ON c.id = t.created_by_id
      ORDER BY t.id;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION public.task_assigned_v1() IS
    'Notifies a new task''s assignee and every staff user (kind task_assigned)'
    ' through pgbell.notify.';

CREATE TRIGGER _100_task_assigned_v1
    AFTER INSERT ON public.tasks_task
    REFERENCING NEW TABLE AS new_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION public.task_assigned_v1();

COMMENT ON TRIGGER _100_task_assigned_v1 ON public.tasks_task IS
    'After INSERT on tasks_task: task_assigned to the assignee and every staff user.';
"""
DROP_TRIGGER = """
DROP TRIGGER _100_task_assigned_v1 ON public.tasks_task;
DROP FUNCTION public.task_assigned_v1();
"""

# pgbell.notify(roles => ...) sends to whatever this returns. Inactive users
# are left out, as Django's own login leaves them out. It runs inside
# pgbell.notify with the rights of pgbell's owner, which therefore needs
# SELECT on the three auth tables (it has them when one login owns both).
ROLE_MEMBERS = """
CREATE OR REPLACE FUNCTION pgbell.role_members(role text) RETURNS SETOF text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT u.id::text FROM public.auth_user u
     WHERE role_members.role = 'staff' AND u.is_staff AND u.is_active
    UNION
    SELECT u.id::text
      FROM public.auth_group g
      JOIN public.auth_user_groups ug ON ug.group_id = g.id
      JOIN public.auth_user u ON u.id = ug.user_id
     WHERE role_members.role <> 'staff' AND g.name = role_members.role AND u.is_active
$$;

COMMENT ON FUNCTION pgbell.role_members(text) IS
    'Replaced by the Django example (tasks 0002): role staff is auth_user.is_staff,'
    ' any other role the members of the auth_group of that name; active users, ids as text.';
"""
# Back to the version `pgbell migrate` installs (db/triggers/018_role_members.sql).
PGBELL_ROLE_MEMBERS = """
CREATE OR REPLACE FUNCTION pgbell.role_members(role text) RETURNS SETOF text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT u.id::text FROM pgbell.users u WHERE role_members.role = ANY (u.roles)
$$;

COMMENT ON FUNCTION pgbell.role_members(text) IS
    'Public, replaceable: the recipient ids (text) of a role, for pgbell.notify(roles => ...).'
    ' Installed: pgbell''s own users with that role; replace it to read the application''s tables.';
"""


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("tasks", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(require_pgbell, migrations.RunPython.noop),
        migrations.RunSQL(TEMPLATE, DROP_TEMPLATE),
        migrations.RunSQL(TRIGGER, DROP_TRIGGER),
        migrations.RunSQL(ROLE_MEMBERS, PGBELL_ROLE_MEMBERS),
    ]
