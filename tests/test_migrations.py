"""Migrations: up, down and up again, and `pgbell migrate` twice."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg

from pgbell.ops import migrate


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables"
            " WHERE table_schema IN ('pgbell', 'public') AND table_name <> 'alembic_version'"
        ).fetchall()
    return {r[0] for r in rows}


def test_upgrade_downgrade_upgrade(empty_database):
    migrate.upgrade(empty_database)
    tables = _tables(empty_database)
    assert {
        "pgbell.users",
        "pgbell.notifications",
        "pgbell.templates",
        "public.deals",
        "public.payments",
    } <= tables
    migrate.downgrade(empty_database, "base")
    assert _tables(empty_database) == set()
    migrate.upgrade(empty_database)
    assert _tables(empty_database) == tables


def test_pgbell_migrate_is_safe_to_run_twice(empty_database):
    env = dict(os.environ, DATABASE_URL=empty_database)
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-m", "pgbell", "migrate"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
    assert "pgbell.notifications" in _tables(empty_database)
