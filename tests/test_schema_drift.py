"""db/ describes the schema; the migrations must produce exactly it.

One database is built from db/schema.sql plus every db/triggers/*.sql file
(and db/demo.sql plus db/triggers/demo/*.sql for the demo), another by
`pgbell migrate` (`--demo`); their schema-only dumps must match.
"""

from __future__ import annotations

import difflib
import re
import subprocess

import psycopg
import pytest

from pgbell.ops import embedded, migrate
from pgbell.ops.migrate import DB_DIR, TRIGGERS_DIR
from tests.conftest import create_database, drop_database
from tests.support import unique_name

_ATTVER = re.compile(r"ALTER TABLE ONLY \S+ ALTER COLUMN \S+ SET \(pg_attver=\d+\);$")


def _dump(url: str) -> list[str]:
    # The wheel's pg_dump (18) reads every server version pgbell supports.
    out = subprocess.run(
        [
            str(embedded.bin_dir() / "pg_dump"),
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--exclude-table=pgbell.alembic_version",
            "--dbname",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    # Left out: \restrict lines (a random key per dump), comments, and the
    # per-column pg_attver stamps some PostgreSQL builds record on every
    # column at creation time, which differ between any two databases.
    return [
        line
        for line in out.splitlines()
        if line
        and not line.startswith(("--", "\\restrict", "\\unrestrict"))
        and not _ATTVER.match(line)
    ]


@pytest.mark.parametrize("demo", [False, True], ids=["pgbell", "with-demo"])
def test_migrations_produce_exactly_what_db_describes(pg_url, demo):
    names = [unique_name("pgbell_mig"), unique_name("pgbell_db")]
    files = [DB_DIR / "schema.sql", *sorted(TRIGGERS_DIR.glob("*.sql"))]
    if demo:
        files += [DB_DIR / "demo.sql", *sorted((TRIGGERS_DIR / "demo").glob("*.sql"))]
    try:
        by_migration = create_database(pg_url, names[0])
        migrate.upgrade(by_migration, demo=demo)
        by_files = create_database(pg_url, names[1])
        with psycopg.connect(by_files, autocommit=True) as conn:
            for path in files:
                conn.execute(path.read_text())
        a, b = _dump(by_migration), _dump(by_files)
        diff = "\n".join(
            difflib.unified_diff(a, b, "alembic upgrade head", "db/", lineterm="", n=2)
        )
        assert a == b, f"schema drift between the migrations and db/:\n{diff}"
    finally:
        for name in names:
            drop_database(pg_url, name)


def test_every_pgbell_function_and_trigger_has_a_comment(database_url):
    with psycopg.connect(database_url) as conn:
        missing = conn.execute(
            """
            SELECT 'function ' || p.oid::regprocedure FROM pg_proc p
             WHERE p.pronamespace = 'pgbell'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL
            UNION ALL
            SELECT 'trigger ' || name FROM pgbell.rules WHERE comment IS NULL
            UNION ALL
            SELECT 'table ' || c.oid::regclass FROM pg_class c
             WHERE c.relnamespace = 'pgbell'::regnamespace AND c.relkind IN ('r', 'v')
               AND obj_description(c.oid, 'pg_class') IS NULL
            """
        ).fetchall()
    assert missing == [], f"objects without COMMENT ON: {missing}"
