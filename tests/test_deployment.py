"""deploy/ as a team runs it, end to end, with real nginx and real PgBouncer
from Debian: nginx terminates TLS in front of two `pgbell serve` processes
started as deploy/systemd/pgbell@.service starts them, with the settings of
deploy/pgbell.env; their pools go through PgBouncer in transaction mode
(deploy/pgbouncer/pgbouncer.ini) and each LISTEN connection straight to
PostgreSQL. A client on wss:// keeps receiving while deals are committed
from SQL, each process is restarted in turn and PgBouncer is restarted:
every committed notification arrives, and after de-duplication by id, once.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy_support import (
    PGBELL,
    Nginx,
    Pgbell,
    PgBouncer,
    client_tls,
    deploy_env,
    scratch_dir,
    self_signed,
)
from tests.support import add_user, insert_deal, wait_until

# a client on another loopback address than nginx's: the processes must see it
CLIENT_ADDRESS = "127.0.0.3"
DEAL_EVERY = 0.03  # seconds between two commits of the writer
PHASE_WAIT = 20.0


@dataclass
class Stack:
    bouncer: PgBouncer
    servers: list[Pgbell]
    nginx: Nginx
    env: dict[str, str]
    cert_ssl: ssl.SSLContext


@pytest.fixture
async def stack(database_url: str, http: aiohttp.ClientSession) -> AsyncIterator[Stack]:
    directory = scratch_dir()
    cert, key = self_signed(directory)
    bouncer = PgBouncer(directory, database_url)
    env = deploy_env(bouncer.url(), database_url)
    servers = [Pgbell(directory, env), Pgbell(directory, env)]
    nginx = Nginx(directory, (servers[0].port, servers[1].port), cert, key)
    try:
        await bouncer.start()
        await asyncio.gather(*(s.start(http) for s in servers))
        await nginx.start()
        yield Stack(bouncer, servers, nginx, env, client_tls(cert))
    finally:
        # whatever happened, nothing of this test outlives it
        for part in (nginx, *servers, bouncer):
            await part.kill()
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class Connection:
    """One socket of the client: what its snapshot and its live frames carried."""

    since: int | None
    snapshot: set[int] | None = None
    live: list[int] = field(default_factory=list)
    close_code: int | None = None
    ended_by: str = ""


class Client:
    """A client as PROTOCOL.md describes one: on a close it reconnects with
    backoff and resumes with ?since= the largest id it has seen; it keeps
    every id it receives, duplicates counted."""

    def __init__(self, session: aiohttp.ClientSession, ws_base: str, token: str) -> None:
        self._session = session
        self._ws_base = ws_base
        self._token = token
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._stopping = False
        self.connections: list[Connection] = []
        self.received: Counter[int] = Counter()
        self.failed_attempts: list[str] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        delay = 0.05
        while not self._stopping:
            since = max(self.received) if self.received else None
            url = f"{self._ws_base}/ws?token={self._token}"
            if since is not None:
                url += f"&since={since}"
            try:
                self._ws = await self._session.ws_connect(url)
            except (aiohttp.ClientError, OSError) as e:
                # both processes away at once, or nginx still skipping a
                # restarted one: back off and try again, as a client does
                self.failed_attempts.append(repr(e))
                await asyncio.sleep(delay)
                delay = min(2 * delay, 1.0)
                continue
            delay = 0.05
            conn = Connection(since)
            self.connections.append(conn)
            while True:
                msg = await self._ws.receive()
                if msg.type == aiohttp.WSMsgType.CLOSE:
                    # the code the server sent: aiohttp reports 1006 instead when
                    # its own close reply finds the connection already gone
                    conn.close_code = msg.data
                    break
                if msg.type != aiohttp.WSMsgType.TEXT:
                    conn.close_code = self._ws.close_code
                    conn.ended_by = f"{msg.type!r} {msg.data!r} {self._ws.exception()!r}"
                    break
                frame = json.loads(msg.data)
                if frame["type"] == "snapshot":
                    notes = frame["notifications"] + frame.get("missed", [])
                    conn.snapshot = {n["id"] for n in notes}
                    self.received.update(conn.snapshot)
                elif frame["type"] == "notification":
                    conn.live.append(frame["notification"]["id"])
                    self.received[frame["notification"]["id"]] += 1
            await self._ws.close()

    @property
    def current(self) -> Connection | None:
        return self.connections[-1] if self.connections else None

    async def stop(self) -> None:
        self._stopping = True
        if self._ws is not None:
            await self._ws.close()
        try:
            await asyncio.wait_for(self.task, 10)
        finally:
            self.task.cancel()


async def write_deals(database_url: str, owner: int, stop: asyncio.Event) -> int:
    """An application committing a deal for `owner` every DEAL_EVERY seconds,
    straight to PostgreSQL, until `stop`; returns how many it committed."""
    committed = 0
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        while not stop.is_set():
            await conn.execute(
                "INSERT INTO deals (title, amount, owner_id) VALUES (%s, 1, %s)",
                (f"Rolling {committed}", owner),
            )
            committed += 1
            await asyncio.sleep(DEAL_EVERY)
    return committed


async def sockets_of(http: aiohttp.ClientSession, server: Pgbell) -> float:
    """pgbell_websocket_connections of one process, scraped on its own port."""
    async with http.get(f"{server.base}/metrics") as r:
        assert r.status == 200, await r.text()
        text = await r.text()
    for family in text_string_to_metric_families(text):
        if family.name == "pgbell_websocket_connections":
            return family.samples[0].value
    raise AssertionError("pgbell_websocket_connections missing from /metrics")


async def holder_of_the_socket(http: aiohttp.ClientSession, servers: list[Pgbell]) -> Pgbell:
    async def one_holds_it() -> Pgbell | None:
        # a process that is stopped holds nothing
        counts = [await sockets_of(http, s) if s.process.running() else 0 for s in servers]
        return servers[counts.index(1)] if sorted(counts) == [0, 1] else None

    return await wait_until(one_holds_it, "one process holding the client's socket")


async def received_more(client: Client, n: int, what: str) -> None:
    target = len(client.received) + n
    await wait_until(
        lambda: len(client.received) >= target, f"{n} more notifications {what}", PHASE_WAIT
    )


async def test_rolling_restarts_and_a_pgbouncer_restart_lose_nothing(
    stack: Stack, http: aiohttp.ClientSession, database_url: str
):
    owner = add_user(database_url, "ann")
    tls = stack.nginx
    connector = aiohttp.TCPConnector(ssl=stack.cert_ssl, local_addr=(CLIENT_ADDRESS, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        # the whole deployment passes its own check first
        done = await asyncio.to_thread(
            subprocess.run,
            [str(PGBELL), "check"],
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr

        async with session.post(
            f"{tls.base}/auth/login", json={"username": "ann", "password": "pw"}
        ) as r:
            assert r.status == 200, await r.text()
            token = (await r.json())["token"]

        # nginx's X-Forwarded-For, trusted through PGBELL_TRUSTED_PROXIES: the
        # processes log the client's own address, not nginx's
        def login_logged() -> list[dict]:
            return [
                json.loads(line)
                for s in stack.servers
                for line in s.log.read_text().splitlines()
                if '"/auth/login"' in line
            ]

        logged = await wait_until(login_logged, "the access-log line of the login")
        assert [e["remote"] for e in logged] == [CLIENT_ADDRESS], logged
        async with session.get(f"{tls.base}/metrics") as r:
            assert r.status == 403, "nginx must keep /metrics off the public side"
        async with session.get(
            f"http://127.0.0.1:{tls.http_port}/notifications", allow_redirects=False
        ) as r:
            assert r.status == 301 and r.headers["Location"].startswith("https://")

        client = Client(session, tls.ws_base, token)
        stop_writing = asyncio.Event()
        writer = asyncio.create_task(write_deals(database_url, owner, stop_writing))
        try:
            await wait_until(
                lambda: client.current and client.current.snapshot is not None,
                "the first snapshot over wss:// through nginx",
            )
            await received_more(client, 5, "live, before any restart")

            # 1. each pgbell process in turn: the one holding the socket goes
            restarted = []
            for _ in range(2):
                holder = await holder_of_the_socket(http, stack.servers)
                other = next(s for s in stack.servers if s is not holder)
                before = len(client.connections)
                stop = asyncio.create_task(holder.stop())
                await wait_until(
                    lambda before=before: (
                        len(client.connections) > before
                        and client.connections[before - 1].close_code is not None
                    ),
                    "the socket closed by the SIGTERM",
                )
                closed = client.connections[before - 1]
                assert closed.close_code == 1001, f"closed {closed.close_code}: {closed.ended_by}"
                assert await asyncio.wait_for(stop, PHASE_WAIT) == 0, holder.process.tail()
                resumed = client.connections[-1]
                await wait_until(lambda r=resumed: r.snapshot is not None, "the resumed snapshot")
                assert resumed.since is not None, "the client resumed without ?since="
                assert await holder_of_the_socket(http, stack.servers) is other
                await holder.start(http)
                restarted.append(holder)
                await received_more(client, 5, "after the restart")
            assert {id(s) for s in restarted} == {id(s) for s in stack.servers}

            # 2. PgBouncer: the pools lose every connection; REST answers 503
            #    until it is back, the sockets stay open, and what was
            #    committed meanwhile arrives after
            sockets_before = len(client.connections)
            auth = {"Authorization": f"Bearer {token}"}
            await stack.bouncer.stop()

            async def rest_answers(want: int) -> bool:
                async with session.get(f"{tls.base}/notifications/unread-count", headers=auth) as r:
                    body = await r.json()
                    if r.status == 503:
                        assert body["error"]["code"] == "unavailable", body
                    return r.status == want

            await wait_until(lambda: rest_answers(503), "REST answering 503, PgBouncer down")
            async with session.get(f"{tls.base}/readyz") as r:
                assert r.status == 503, await r.text()
            async with session.get(f"{tls.base}/livez") as r:
                assert r.status == 200, "a database outage must not fail liveness"
            during = await asyncio.to_thread(insert_deal, database_url, "During", owner)
            await stack.bouncer.start()
            await wait_until(
                lambda: rest_answers(200), "REST answering 200, PgBouncer back", PHASE_WAIT
            )
            with psycopg.connect(database_url) as conn:
                (note,) = conn.execute(
                    "SELECT id FROM pgbell.notifications WHERE data->>'deal_id' = %s",
                    (str(during),),
                ).fetchone()
            await wait_until(
                lambda: note in client.received,
                "the notification committed while PgBouncer was down",
                PHASE_WAIT,
            )
            await received_more(client, 5, "after PgBouncer's restart")
            assert len(client.connections) == sockets_before, "a socket dropped meanwhile"
        except BaseException:
            client.task.cancel()  # the session closes under it: no reconnecting after
            raise
        finally:
            stop_writing.set()
            committed = await asyncio.wait_for(writer, 10)

        with psycopg.connect(database_url) as conn:
            expected = {
                row[0]
                for row in conn.execute(
                    "SELECT id FROM pgbell.notifications WHERE user_id = %s", (str(owner),)
                )
            }
        # one notification per committed deal: the writer's and "During"
        assert len(expected) == committed + 1
        await wait_until(
            lambda: expected <= set(client.received),
            "every committed notification at the client",
            PHASE_WAIT,
        )
        await client.stop()

    access_log = (tls.directory / "pgbell.access.log").read_text()
    assert 'GET /ws HTTP/1.1" 101' in access_log, access_log[-2000:]
    assert token.rsplit(".", 1)[1] not in access_log, "a token is in nginx's access log"
    missing = expected - set(client.received)
    assert not missing, f"{len(missing)} notifications never arrived: {sorted(missing)[:20]}"
    assert set(client.received) == expected
    for conn in client.connections:
        # within one socket, the server itself never repeats a notification
        assert len(conn.live) == len(set(conn.live)), "a socket got one notification twice"
        assert not set(conn.live) & (conn.snapshot or set()), "live frame repeats the snapshot"
    duplicates = sum(n - 1 for n in client.received.values())
    print(
        f"\n{committed} deals committed, {len(expected)} notifications received once each"
        f" after de-duplication ({duplicates} duplicates on resume),"
        f" {len(client.connections)} sockets (closed {[c.close_code for c in client.connections]}),"
        f" {len(client.failed_attempts)} refused reconnects"
    )
