"""Fixtures: a real PostgreSQL (DATABASE_URL, else the embedded one), a fresh
migrated database per test (cloned from a template migrated once per run),
and a real aiohttp server on a real port."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import psycopg
import pytest
from psycopg import sql

from pgbell.config import Settings
from pgbell.http.app import create_app
from pgbell.ops import migrate
from tests.support import server_env, unique_name, with_database

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def pg_url() -> str:
    """Maintenance URL of the PostgreSQL server the tests run against."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    from pgbell.ops import embedded

    return embedded.start(ROOT / ".data" / "test")


def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            stmt = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        conn.execute(stmt)
    return with_database(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def empty_database(pg_url: str) -> Iterator[str]:
    """A database with nothing in it, dropped after the test."""
    name = unique_name("pgbell_t")
    url = create_database(pg_url, name)
    yield url
    drop_database(pg_url, name)


@pytest.fixture(scope="session")
def template_database(pg_url: str) -> Iterator[str]:
    name = unique_name("pgbell_tpl")
    url = create_database(pg_url, name)
    migrate.upgrade(url, demo=True)
    yield name
    drop_database(pg_url, name)


@pytest.fixture
def database_url(pg_url: str, template_database: str) -> Iterator[str]:
    """A fresh database at the latest migration, demo included, for this test alone."""
    name = unique_name("pgbell_t")
    url = create_database(pg_url, name, template=template_database)
    yield url
    drop_database(pg_url, name)


@pytest.fixture
async def ping_database(database_url: str) -> str:
    """A fresh database with a template `ping` ('Ping', no placeholders)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("INSERT INTO pgbell.templates (kind, title) VALUES ('ping', 'Ping')")
    finally:
        await conn.close()
    return database_url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings.from_env(server_env(database_url))


@pytest.fixture
def start_server(database_url: str, settings: Settings, aiohttp_server):
    """Starts another real pgbell server on a real port. With no arguments it
    runs on `settings`; `env` (PGBELL_* variables, parsed as in production)
    replaces them. `.base`/`.ws_base` are its URLs, `.pgbell_app` its app."""

    async def start(**env: str):
        app = create_app(Settings.from_env(server_env(database_url, **env)) if env else settings)
        srv = await aiohttp_server(app)
        srv.base = str(srv.make_url("")).rstrip("/")
        srv.ws_base = "ws" + srv.base[len("http") :]
        srv.pgbell_app = app
        return srv

    return start


@pytest.fixture
async def server(start_server):
    """A real pgbell server on a real port; `.base` is its http:// URL."""
    return await start_server()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
