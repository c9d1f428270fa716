"""Helpers shared by the tests: databases, users, bounded waits."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from functools import cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import psycopg

from pgbell.passwords import hash_password

JWT_SECRET = "test-secret-" + "x" * 32
DEFAULT_WAIT = 5.0


def server_env(database_url: str, **env: str) -> dict[str, str]:
    """The environment of a test server; `env` adds PGBELL_* variables."""
    # A long safety-poll interval: deliveries in tests must come from NOTIFY.
    return {
        "DATABASE_URL": database_url,
        "PGBELL_JWT_SECRET": JWT_SECRET,
        "PGBELL_POLL_INTERVAL": "60",
        **env,
    }


def free_port() -> int:
    """A loopback port free right now, for a server started in a subprocess."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at database `name`."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def with_login(url: str, user: str) -> str:
    """The same server and database, as another login (trust authentication)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{user}@{host}", parts.path, parts.query, parts.fragment))


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@cache
def _hash(password: str) -> str:
    return hash_password(password)


def add_user(db_url: str, name: str, roles: tuple[str, ...] = (), password: str = "pw") -> int:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "INSERT INTO pgbell.users (username, password_hash, roles)"
            " VALUES (%s, %s, %s) RETURNING id",
            (name, _hash(password), list(roles)),
        ).fetchone()[0]


def insert_deal(db_url: str, title: str, owner_id: int, amount: float = 12000) -> int:
    """A plain SQL writer, as psql would be: its own connection, autocommit."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        return conn.execute(
            "INSERT INTO deals (title, amount, owner_id) VALUES (%s, %s, %s) RETURNING id",
            (title, amount, owner_id),
        ).fetchone()[0]


async def login(session: aiohttp.ClientSession, base: str, name: str, password: str = "pw") -> str:
    async with session.post(
        f"{base}/auth/login", json={"username": name, "password": password}
    ) as r:
        body = await r.json()
        assert r.status == 200, f"login {name}: {r.status} {body}"
        return body["token"]


async def next_frame(
    ws: aiohttp.ClientWebSocketResponse, want: str, timeout: float = DEFAULT_WAIT, where: str = ""
) -> dict[str, Any]:
    """The next frame of type `want`, skipping others; fails naming what did not arrive."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {want!r} frame {where} within {timeout} s (saw {seen})")
        try:
            msg = await asyncio.wait_for(ws.receive(), left)
        except TimeoutError:
            raise AssertionError(
                f"no {want!r} frame {where} within {timeout} s (saw {seen})"
            ) from None
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise AssertionError(
                f"waiting for {want!r} {where}: socket gave {msg.type} {msg.data!r}"
            )
        frame = json.loads(msg.data)
        if frame.get("type") == want:
            return frame
        seen.append(frame.get("type"))


async def assert_no_frame_before_pong(ws: aiohttp.ClientWebSocketResponse, where: str) -> None:
    """Frames to one socket are sent in order, so a pong answered after the
    server published proves nothing else was queued for it meanwhile."""
    await ws.send_json({"type": "ping"})
    msg = await asyncio.wait_for(ws.receive(), DEFAULT_WAIT)
    frame = json.loads(msg.data)
    assert frame == {"type": "pong"}, f"{where} got {frame} where nothing was expected"


async def wait_until(predicate, what: str, timeout: float = DEFAULT_WAIT, interval: float = 0.02):
    """Poll a condition with a bound; fails saying what never became true."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true within {timeout} s")
        await asyncio.sleep(interval)


WAKE_SLOTS = 16  # db/triggers/903_wake_servers_v4.sql: a session's slot is its pid mod 16


async def connections_in_every_slot(url: str, attempts: int = 400) -> list[asyncpg.Connection]:
    """One asyncpg connection per wake-up slot, in slot order: connections
    are opened until every slot has one; the others are closed."""
    by_slot: dict[int, asyncpg.Connection] = {}
    spare: list[asyncpg.Connection] = []
    try:
        for _ in range(attempts):
            if len(by_slot) == WAKE_SLOTS:
                break
            conn = await asyncpg.connect(url)
            slot = conn.get_server_pid() % WAKE_SLOTS
            if slot in by_slot:
                spare.append(conn)
            else:
                by_slot[slot] = conn
    finally:
        for conn in spare:
            await conn.close()
    if len(by_slot) < WAKE_SLOTS:
        for conn in by_slot.values():
            await conn.close()
        raise AssertionError(f"{attempts} connections left slots empty: {sorted(by_slot)}")
    return [by_slot[s] for s in range(WAKE_SLOTS)]
