"""`pgbell` as an operator runs it: a real `pgbell serve` process that is
stopped with SIGTERM, every command's --help, and logs that never carry a
token."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psycopg
import pytest

from tests.contract_client import closed, open_socket, rest, snapshot
from tests.support import JWT_SECRET, add_user, free_port, login, wait_until

PGBELL = Path(sys.executable).with_name("pgbell")
STOP_WAIT = 15.0


@dataclass
class Served:
    proc: asyncio.subprocess.Process
    base: str
    ws_base: str
    stderr: Path

    def log_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stderr.read_text().splitlines() if line]

    async def stop(self) -> int:
        """SIGTERM, then the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        return await self.exited()

    async def exited(self) -> int:
        """The exit status; fails if the process does not exit in time."""
        try:
            return await asyncio.wait_for(self.proc.wait(), STOP_WAIT)
        except TimeoutError:
            raise AssertionError(f"pgbell serve did not exit {STOP_WAIT} s after SIGTERM") from None


@pytest.fixture
async def served(database_url: str, tmp_path: Path) -> AsyncIterator[Served]:
    """`pgbell serve` in its own process, answering /healthz 200."""
    port = free_port()
    stderr = tmp_path / "stderr.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PGBELL_JWT_SECRET": JWT_SECRET,
        "PGBELL_LOG_FORMAT": "json",
        "PGBELL_LOG_LEVEL": "INFO",
    }
    with stderr.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            str(PGBELL),
            "serve",
            "--workers",
            "1",  # one process: its SIGTERM, its requests, its log
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    srv = Served(proc, f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", stderr)
    try:
        async with aiohttp.ClientSession() as http:

            async def healthy() -> bool:
                assert proc.returncode is None, f"pgbell serve exited: {stderr.read_text()}"
                try:
                    async with http.get(f"{srv.base}/healthz") as r:
                        return r.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await wait_until(healthy, "pgbell serve answering /healthz 200", timeout=20)
        yield srv
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _waiting_on_a_lock(database_url: str) -> bool:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return (await cur.fetchone())[0] > 0


async def test_sigterm_closes_sockets_1001_finishes_requests_and_exits_0(
    served, http, database_url
):
    add_user(database_url, "ann")
    token = await login(http, served.base, "ann")
    ws = await open_socket(served.ws_base, token)
    await snapshot(ws, "from pgbell serve")

    # A request in flight: its INSERT waits on a lock this test holds.
    async with await psycopg.AsyncConnection.connect(database_url) as locker:
        await locker.execute("LOCK TABLE deals IN EXCLUSIVE MODE")
        request = asyncio.create_task(
            rest(
                http,
                "POST",
                f"{served.base}/deals",
                token=token,
                json={"title": "In flight", "amount": 1},
            )
        )
        await wait_until(
            lambda: _waiting_on_a_lock(database_url), "POST /deals waiting on the lock"
        )
        served.proc.send_signal(signal.SIGTERM)
        code, reason = await closed(ws, "after SIGTERM")
        assert (code, reason) == (1001, "server shutdown")
        assert not request.done(), "the in-flight request ended before its INSERT could run"
        await locker.commit()  # let the INSERT through

    status, body = await asyncio.wait_for(request, STOP_WAIT)
    assert status == 201 and body["deal"]["title"] == "In flight", body
    assert await served.exited() == 0, served.stderr.read_text()[-2000:]
    # and nothing new is accepted once it has gone
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(f"{served.base}/healthz"):
            pass


async def test_token_in_the_socket_url_never_reaches_the_logs(served, http, database_url):
    add_user(database_url, "ann", password="s3cret-pw")
    token = await login(http, served.base, "ann", "s3cret-pw")
    ws = await open_socket(served.ws_base, token)
    await snapshot(ws, "from pgbell serve")
    await ws.close()
    forged = await open_socket(served.ws_base, token[:-4] + "AAAA")
    await closed(forged, "for a token with a bad signature")
    await rest(http, "GET", f"{served.base}/notifications?token={token}", token=token)

    def ws_logged() -> bool:
        lines = [e for e in served.log_lines() if e.get("path", "").startswith("/ws")]
        return len(lines) >= 2

    await wait_until(ws_logged, "two access-log lines for /ws")
    assert await served.stop() == 0, served.stderr.read_text()[-2000:]
    text = served.stderr.read_text()
    # header.payload is shared by the good and the forged token
    assert token.rsplit(".", 1)[0] not in text, "a token is in the server's log"
    assert token.rsplit(".", 1)[1] not in text, "a token's signature is in the server's log"
    assert "s3cret-pw" not in text, "the password is in the server's log"
    paths = [e["path"] for e in served.log_lines() if "path" in e]
    assert "/ws?token=[redacted]" in paths, paths
    assert "/notifications?token=[redacted]" in paths, paths


@pytest.mark.parametrize(
    "command",
    [
        ["migrate"],
        ["serve"],
        ["user", "add"],
        ["user"],
        ["rules"],
        ["prune"],
        ["run"],
        ["psql"],
        [],
    ],
    ids=lambda c: " ".join(c) or "pgbell",
)
def test_every_command_has_help(command):
    done = subprocess.run(
        [str(PGBELL), *command, "--help"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: {' '.join(['pgbell', *command])}"), done.stdout
