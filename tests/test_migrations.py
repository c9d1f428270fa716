"""Migrations: pgbell's schema and nothing else, the demo on request, up and
down and up again, `pgbell migrate` twice, and an application's own alembic
left alone."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg

from pgbell import schema
from pgbell.ops import migrate


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
    return {r[0] for r in rows}


CORE = {
    "pgbell.alembic_version",
    "pgbell.users",
    "pgbell.notifications",
    "pgbell.templates",
    "pgbell.template_problems",
    "pgbell.preferences",
    "pgbell.global_preferences",
    "pgbell.state_changes",
    "pgbell.rules",
}


def test_migrate_installs_pgbell_schema_and_nothing_outside_it(empty_database):
    outcome = migrate.upgrade(empty_database)
    assert not outcome.demo
    assert _tables(empty_database) == CORE
    with psycopg.connect(empty_database) as conn:
        outside = conn.execute(
            "SELECT n.nspname || '.' || p.proname FROM pg_proc p"
            " JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgbell')"
            " UNION ALL SELECT typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
            " WHERE n.nspname = 'public'"
        ).fetchall()
    assert outside == []
    assert migrate.current_revisions(empty_database) == [schema.heads()["pgbell"]]


def test_an_applications_own_alembic_version_is_left_alone(empty_database):
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.alembic_version (version_num varchar(32) PRIMARY KEY)")
        conn.execute("INSERT INTO public.alembic_version VALUES ('app_0042')")
    migrate.upgrade(empty_database, demo=True)
    migrate.downgrade(empty_database, "base")
    with psycopg.connect(empty_database) as conn:
        rows = conn.execute("SELECT version_num FROM public.alembic_version").fetchall()
    assert rows == [("app_0042",)]


def test_demo_is_its_own_branch_up_down_and_up_again(empty_database):
    migrate.upgrade(empty_database)
    outcome = migrate.upgrade(empty_database, demo=True)
    assert outcome.demo
    with_demo = _tables(empty_database)
    assert with_demo == CORE | {"public.deals", "public.payments"}
    # a later `pgbell migrate` (no --demo) keeps the demo, and upgrades it
    assert migrate.upgrade(empty_database).demo
    migrate.downgrade(empty_database, "base")
    assert _tables(empty_database) == {"pgbell.alembic_version"}
    migrate.upgrade(empty_database, demo=True)
    assert _tables(empty_database) == with_demo


def test_pgbell_migrate_is_safe_to_run_twice(empty_database):
    env = dict(os.environ, DATABASE_URL=empty_database)
    for args in (["migrate"], ["migrate"], ["migrate", "--demo"], ["migrate", "--demo"]):
        out = subprocess.run(
            [sys.executable, "-m", "pgbell", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert "at the latest migration" in out.stdout
    assert {"pgbell.notifications", "public.deals"} <= _tables(empty_database)


ROLE_MEMBERS = (
    "SELECT array_to_string(proconfig, ','), prosrc FROM pg_proc"
    " WHERE oid = 'pgbell.role_members(text)'::regprocedure"
)
APPLICATIONS_OWN = """
    CREATE OR REPLACE FUNCTION pgbell.role_members(role text) RETURNS SETOF text
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
        SELECT 'staff-' || role_members.role
    $$
"""


def test_0004_frees_the_installed_role_members_only(empty_database):
    migrate.upgrade(empty_database)
    with psycopg.connect(empty_database) as conn:
        config, src = conn.execute(ROLE_MEMBERS).fetchone()
    assert config is None, "the installed role_members keeps no SET clause"
    assert "pgbell.users" in src

    # down to 0003 puts the SET clause back; an application then replaces it
    migrate.downgrade(empty_database, "0003")
    with psycopg.connect(empty_database, autocommit=True) as conn:
        assert conn.execute(ROLE_MEMBERS).fetchone()[0] == "search_path=pg_catalog, pg_temp"
        conn.execute(APPLICATIONS_OWN)
    migrate.upgrade(empty_database)
    with psycopg.connect(empty_database) as conn:
        config, src = conn.execute(ROLE_MEMBERS).fetchone()
        members = conn.execute("SELECT pgbell.role_members('x')").fetchall()
    assert config == "search_path=pg_catalog, pg_temp", "the application's version is left as is"
    assert "staff-" in src and members == [("staff-x",)]


WAKE_TRIGGERS = """
SELECT t.tgname, t.tgfoid::regprocedure::text FROM pg_trigger t
 WHERE t.tgrelid = 'pgbell.notifications'::regclass AND t.tgname LIKE '\\_90%'
"""


def test_0005_puts_the_wake_up_in_slots_and_down_gives_back_v3(empty_database):
    migrate.upgrade(empty_database)
    with psycopg.connect(empty_database) as conn:
        assert conn.execute(WAKE_TRIGGERS).fetchall() == [
            ("_903_wake_servers_v4", "pgbell.wake_servers_v4()")
        ]
    migrate.downgrade(empty_database, "0004")
    with psycopg.connect(empty_database, autocommit=True) as conn:
        assert conn.execute(WAKE_TRIGGERS).fetchall() == [
            ("_902_wake_servers_v3", "pgbell.wake_servers_v3()")
        ]
        assert conn.execute("SELECT to_regprocedure('pgbell.wake_servers_v4()')").fetchone() == (
            None,
        )
        # v3 still notifies: a row written through it, and its trigger ran
        conn.execute("INSERT INTO pgbell.templates (kind, title) VALUES ('ping', 'Ping')")
        assert conn.execute("SELECT pgbell.notify('ping', ARRAY['u-1'])").fetchone() == (1,)
    migrate.upgrade(empty_database)
    with psycopg.connect(empty_database) as conn:
        assert conn.execute(WAKE_TRIGGERS).fetchall() == [
            ("_903_wake_servers_v4", "pgbell.wake_servers_v4()")
        ]
