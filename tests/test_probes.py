"""/livez and /readyz: liveness never asks the database, so an outage does
not get healthy processes restarted; readiness fails while the database or
the listener is away, and from the moment SIGTERM arrives, while the server
still serves, so that a load balancer stops sending it clients first."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jsonschema
import pytest

from pgbell.http import keys
from pgbell.http.openapi import DOCUMENT
from tests.contract_client import database_outage, open_socket, snapshot
from tests.deploy_support import PGBELL
from tests.support import JWT_SECRET, add_user, free_port, login, wait_until

STOP_WAIT = 15.0


def documented(path: str, status: int, body: Any) -> None:
    """The answer matches what /openapi.json says of it."""
    op = DOCUMENT["paths"][path]["get"]
    assert str(status) in op["responses"], f"{path} answered undocumented {status}"
    schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator({**schema, "components": DOCUMENT["components"]}).validate(body)


async def probe(http: aiohttp.ClientSession, base: str, path: str) -> tuple[int, Any]:
    async with http.get(f"{base}{path}") as r:
        body = await r.json()
    documented(path, r.status, body)
    return r.status, body


async def test_livez_and_readyz_answer_200_once_ready(server, http):
    async def ready() -> bool:
        return (await probe(http, server.base, "/readyz"))[0] == 200

    await wait_until(ready, "/readyz answering 200 after start-up")
    status, body = await probe(http, server.base, "/readyz")
    assert body == {"status": "ok", "database": True, "listener": True, "draining": False}
    assert await probe(http, server.base, "/livez") == (200, {"status": "ok"})


async def test_a_database_outage_fails_readiness_never_liveness(server, http, database_url, pg_url):
    await wait_until(lambda: server.pgbell_app[keys.LISTENER].connected, "listener connected")
    async with database_outage(pg_url, database_url):

        async def unready() -> tuple[int, Any] | None:
            answer = await probe(http, server.base, "/readyz")
            return answer if answer[0] == 503 else None

        _, body = await wait_until(unready, "/readyz turning 503 in the outage", timeout=10)
        assert body["database"] is False and body["draining"] is False, body
        assert body["error"]["code"] == "unavailable", body
        assert await probe(http, server.base, "/livez") == (200, {"status": "ok"})

    async def ready() -> bool:
        return (await probe(http, server.base, "/readyz"))[0] == 200

    await wait_until(ready, "/readyz back to 200 after the outage", timeout=15)


@pytest.fixture
async def draining_server(database_url: str, http, tmp_path) -> AsyncIterator[tuple[Any, str]]:
    """`pgbell serve` with a long PGBELL_SHUTDOWN_DRAIN: the test ends the
    drain itself, with a second SIGTERM."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PGBELL_JWT_SECRET": JWT_SECRET,
        "PGBELL_SHUTDOWN_DRAIN": "120",
    }
    with (tmp_path / "stderr.log").open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            str(PGBELL),
            "serve",
            "--workers",
            "1",  # the drain of one process; tests/test_workers.py has the supervisor's
            "--port",
            str(port),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    base = f"http://127.0.0.1:{port}"
    try:

        async def ready() -> bool:
            assert proc.returncode is None, "pgbell serve exited"
            try:
                return (await probe(http, base, "/readyz"))[0] == 200
            except aiohttp.ClientConnectionError:
                return False

        await wait_until(ready, "pgbell serve answering /readyz 200", timeout=20)
        yield proc, base
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_sigterm_fails_readiness_before_anything_closes(draining_server, http, database_url):
    proc, base = draining_server
    add_user(database_url, "ann")
    token = await login(http, base, "ann")
    ws = await open_socket(base.replace("http", "ws", 1), token)
    await snapshot(ws, "before SIGTERM")

    proc.send_signal(signal.SIGTERM)

    async def draining() -> tuple[int, Any] | None:
        answer = await probe(http, base, "/readyz")
        return answer if answer[0] == 503 else None

    _, body = await wait_until(draining, "/readyz turning 503 after SIGTERM")
    assert body["draining"] is True and body["error"]["code"] == "unavailable", body
    # still serving: liveness, REST and the open socket
    assert await probe(http, base, "/livez") == (200, {"status": "ok"})
    async with http.get(f"{base}/notifications", headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200, await r.text()
    await ws.send(json.dumps({"type": "ping"}))
    pong = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert pong == {"type": "pong"}, "the socket must stay open while the server drains"

    proc.send_signal(signal.SIGTERM)  # a second one ends the drain at once
    await asyncio.wait_for(ws.wait_closed(), STOP_WAIT)
    assert ws.close_code == 1001, ws.close_code
    assert await asyncio.wait_for(proc.wait(), STOP_WAIT) == 0


async def test_more_sigterms_while_stopping_change_nothing(draining_server, http):
    """Two more SIGTERMs at once after the first (a supervisor forwarding
    one while systemd sends another): the second ends the drain, the third
    arrives during the shutdown and must not cut it short (exit 1)."""
    proc, base = draining_server
    proc.send_signal(signal.SIGTERM)

    async def draining() -> bool:
        return (await probe(http, base, "/readyz"))[0] == 503

    await wait_until(draining, "/readyz turning 503 after SIGTERM")
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), STOP_WAIT) == 0
