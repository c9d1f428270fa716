"""`pgbell serve --workers 2` as an operator runs it: a supervisor and two
worker processes on one port (SO_REUSEPORT), each with its own LISTEN
connection; one SIGTERM stops them all, a killed worker comes back, and a
configuration or a database that cannot work stops the start with a reason."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psycopg
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tests.contract_client import closed, frame, mint, open_socket
from tests.support import (
    DEFAULT_WAIT,
    JWT_SECRET,
    add_user,
    free_port,
    insert_deal,
    wait_until,
)

PGBELL = Path(sys.executable).with_name("pgbell")
START_WAIT = 40.0  # two workers importing everything on a busy 2-core machine
STOP_WAIT = 40.0
# Sockets of one user opened before two different workers have taken one;
# with two workers the kernel's hash picks the same one 40 times in 2**-39.
ATTEMPTS = 40


@dataclass
class Supervised:
    proc: asyncio.subprocess.Process
    port: int
    stdout: Path
    stderr: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log_lines(self) -> list[dict]:
        lines = []
        for line in self.stderr.read_text().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines

    def supervisor_said(self, start: str) -> list[dict]:
        return [
            e
            for e in self.log_lines()
            if e["logger"] == "pgbell.workers" and e["msg"].startswith(start)
        ]

    def worker_pids(self) -> dict[int, int]:
        """Worker index -> the pid of its latest process, as the supervisor logged them."""
        started = [e for e in self.supervisor_said("worker ") if " started " in e["msg"]]
        return {e["worker"]: e["pid"] for e in started}

    async def exited(self) -> int:
        try:
            return await asyncio.wait_for(self.proc.wait(), STOP_WAIT)
        except TimeoutError:
            raise AssertionError(
                f"the supervisor did not exit within {STOP_WAIT} s:\n{self.tail()}"
            ) from None

    def tail(self) -> str:
        return self.stderr.read_text()[-3000:]


def _env(database_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "PGBELL_JWT_SECRET": JWT_SECRET,
        "PGBELL_LOG_FORMAT": "json",
        "PGBELL_LOG_LEVEL": "INFO",
        "PGBELL_POLL_INTERVAL": "60",  # deliveries must come from each worker's LISTEN
        **extra,
    }


async def _start(tmp_path: Path, env: dict[str, str], *args: str, port: int = 0) -> Supervised:
    """With port 0 the supervisor picks the port and holds it (no other
    process can take it meanwhile); its first line says which."""
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with out.open("wb") as o, err.open("wb") as e:
        proc = await asyncio.create_subprocess_exec(
            str(PGBELL), "serve", "--port", str(port), *args, env=env, stdout=o, stderr=e
        )
    return Supervised(proc, port, out, err)


def _port_said(srv: Supervised) -> int | None:
    found = re.search(
        r"serving on http://127\.0\.0\.1:(\d+) with 2 workers", srv.stdout.read_text()
    )
    return int(found[1]) if found else None


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Supervised]]]:
    """start(database_url, **env): `pgbell serve --workers 2`, once the
    supervisor says that both workers are ready. Killed afterwards."""
    started: list[Supervised] = []

    async def run(database_url: str, **extra: str) -> Supervised:
        srv = await _start(tmp_path, _env(database_url, **extra), "--workers", "2")
        started.append(srv)

        def ready() -> bool:
            assert srv.proc.returncode is None, f"the supervisor exited:\n{srv.tail()}"
            return bool(srv.supervisor_said("all 2 workers ready"))

        await wait_until(ready, "the supervisor saying both workers are ready", START_WAIT)
        srv.port = _port_said(srv) or 0
        assert srv.port, f"no port on the supervisor's first line: {srv.stdout.read_text()}"
        return srv

    yield run
    for srv in started:
        if srv.proc.returncode is None:
            srv.proc.kill()
            await srv.proc.wait()
        for pid in srv.worker_pids().values():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _children(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()


async def one_socket_per_worker(ws_base: str, token: str) -> list[ClientConnection]:
    """With PGBELL_MAX_SOCKETS_PER_USER=1, a worker refuses a user's second
    socket with 4429: two sockets of one user that both get their snapshot
    are held by two different workers."""
    held: list[ClientConnection] = []
    for _ in range(ATTEMPTS):
        ws = await open_socket(ws_base, token)
        try:
            first = json.loads(await asyncio.wait_for(ws.recv(), DEFAULT_WAIT))
        except ConnectionClosed:
            assert ws.close_code == 4429, f"a socket closed {ws.close_code} {ws.close_reason}"
            continue
        assert first["type"] == "snapshot", first
        held.append(ws)
        if len(held) == 2:
            return held
    raise AssertionError(f"{ATTEMPTS} sockets of one user, and only one worker took any")


async def _listeners(database_url: str) -> int:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'pgbell-listener'"
        )
        return (await cur.fetchone())[0]


async def _delivered_to_both(database_url: str, owner: int, sockets: list[ClientConnection]):
    deal = insert_deal(database_url, "Acme", owner)  # a SQL writer: no worker saw it come
    got = [await frame(ws, "notification", f"on worker socket {i}") for i, ws in enumerate(sockets)]
    for note in got:
        assert note["notification"]["data"]["deal_id"] == deal, note


async def test_both_workers_take_sockets_deliver_from_their_own_listener_and_stop_on_one_sigterm(
    start, database_url
):
    srv = await start(database_url, PGBELL_MAX_SOCKETS_PER_USER="1")
    pids = srv.worker_pids()
    assert sorted(pids) == [1, 2] and len(set(pids.values())) == 2, pids
    ann = add_user(database_url, "ann")
    sockets = await one_socket_per_worker(srv.ws_base, mint(ann))
    assert await _listeners(database_url) == 2, "one LISTEN connection per worker"
    await _delivered_to_both(database_url, ann, sockets)

    srv.proc.send_signal(signal.SIGTERM)
    for i, ws in enumerate(sockets):
        assert await closed(ws, f"worker socket {i} after SIGTERM") == (1001, "server shutdown")
    assert await srv.exited() == 0, srv.tail()
    assert not [pid for pid in pids.values() if _alive(pid)], "a worker outlived the supervisor"
    assert await _listeners(database_url) == 0
    stopped = srv.supervisor_said("worker ")
    assert {e["worker"] for e in stopped if e["msg"].endswith(" stopped")} == {1, 2}, stopped


async def test_a_second_sigterm_reaches_every_worker_and_cuts_the_drain_short(
    start, database_url, http
):
    srv = await start(database_url, PGBELL_MAX_SOCKETS_PER_USER="1", PGBELL_SHUTDOWN_DRAIN="120")
    ann = add_user(database_url, "ann")
    sockets = await one_socket_per_worker(srv.ws_base, mint(ann))
    srv.proc.send_signal(signal.SIGTERM)

    def draining() -> bool:
        said = [e for e in srv.log_lines() if e["msg"].startswith("SIGTERM: /readyz answers 503")]
        return {e.get("worker") for e in said} == {1, 2}

    await wait_until(draining, "both workers draining after the first SIGTERM")
    for _ in range(4):  # whichever worker answers
        async with http.get(f"{srv.base}/readyz") as r:
            assert r.status == 503
    for ws in sockets:  # still open while draining
        await ws.send(json.dumps({"type": "ping"}))
        assert await frame(ws, "pong", "while draining")
    srv.proc.send_signal(signal.SIGTERM)
    for i, ws in enumerate(sockets):
        code = await closed(ws, f"worker socket {i} after the second SIGTERM", timeout=30)
        assert code == (1001, "server shutdown")
    assert await srv.exited() == 0, srv.tail()


async def test_a_killed_worker_is_restarted_and_serves_again(start, database_url):
    srv = await start(database_url, PGBELL_MAX_SOCKETS_PER_USER="1")
    ann = add_user(database_url, "ann")
    sockets = await one_socket_per_worker(srv.ws_base, mint(ann))
    first = srv.worker_pids()
    os.kill(first[1], signal.SIGKILL)

    def restarted() -> bool:
        assert srv.proc.returncode is None, f"the supervisor exited:\n{srv.tail()}"
        return srv.worker_pids()[1] != first[1] and len(srv.supervisor_said("all 2")) == 2

    await wait_until(restarted, "worker 1 started again and ready", START_WAIT)
    [died] = srv.supervisor_said(f"worker 1 (pid {first[1]}) exited with killed by SIGKILL")
    assert died["level"] == "warning", died
    assert srv.worker_pids()[2] == first[2], "worker 2 was restarted too"
    for ws in sockets:
        await ws.close()
    # both workers again: a socket each, and each one's listener delivers
    await wait_until(lambda: _listeners_are(database_url, 2), "two LISTEN connections again")
    sockets = await one_socket_per_worker(srv.ws_base, mint(ann))
    await _delivered_to_both(database_url, ann, sockets)
    srv.proc.send_signal(signal.SIGTERM)
    assert await srv.exited() == 0, srv.tail()


async def _listeners_are(database_url: str, n: int) -> bool:
    return await _listeners(database_url) == n


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"PGBELL_WORKERS": "many"}, "pgbell: PGBELL_WORKERS must be an integer, got 'many'"),
        ({"PGBELL_WORKERS": "0"}, "pgbell: PGBELL_WORKERS must be between 1 and 256, got 0"),
        ({"PGBELL_DB_POOL_MAX": "1"}, "pgbell: PGBELL_DB_POOL_MAX must be between 2 and 1000"),
    ],
    ids=["PGBELL_WORKERS=many", "PGBELL_WORKERS=0", "a bad setting with PGBELL_WORKERS=2"],
)
def test_a_bad_setting_stops_the_start_with_one_line_before_any_worker(setting, message):
    env = _env("postgresql://127.0.0.1:1/none", **{"PGBELL_WORKERS": "2", **setting})
    done = subprocess.run(
        [str(PGBELL), "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert done.stderr.splitlines() == [done.stderr.strip()], done.stderr
    assert done.stderr.startswith(message), done.stderr
    assert done.stdout == "", "something started"


async def test_workers_that_cannot_start_make_the_supervisor_give_up_with_the_reason(tmp_path):
    """A database that refuses every connection: each worker exits before it
    is ready; the supervisor tries a few times, then exits 1 with the reason."""
    srv = await _start(tmp_path, _env("postgresql://postgres@127.0.0.1:1/none"), "--workers", "2")
    try:
        code = await asyncio.wait_for(srv.proc.wait(), 120)
    except TimeoutError:
        srv.proc.kill()
        raise AssertionError(f"the supervisor kept trying for 120 s:\n{srv.tail()}") from None
    assert code == 1, srv.tail()
    last = srv.stderr.read_text().splitlines()[-1]
    assert last.startswith("pgbell: worker ") and "exited before it was ready 3 times" in last
    assert "Connect call failed" in last, last
    started = srv.supervisor_said("worker ")
    pids = [e["pid"] for e in started if " started " in e["msg"]]
    assert len(pids) >= 3, started
    assert not [pid for pid in pids if _alive(pid)], "a worker outlived the supervisor"


async def test_workers_1_is_one_process_without_a_supervisor(tmp_path, database_url):
    srv = await _start(tmp_path, _env(database_url), "--workers", "1", port=free_port())
    try:
        async with aiohttp.ClientSession() as http:

            async def up() -> bool:
                assert srv.proc.returncode is None, srv.tail()
                try:
                    async with http.get(f"{srv.base}/metrics") as r:
                        return r.status == 200 and 'worker="1",workers="1"' in await r.text()
                except aiohttp.ClientConnectionError:
                    return False

            await wait_until(up, "pgbell serve --workers 1 answering /metrics", START_WAIT)
        assert _children(srv.proc.pid) == [], "--workers 1 started processes"
        assert not srv.supervisor_said(""), "a supervisor logged"
        srv.proc.send_signal(signal.SIGTERM)
        assert await srv.exited() == 0, srv.tail()
    finally:
        if srv.proc.returncode is None:
            srv.proc.kill()
            await srv.proc.wait()
