"""The LISTEN connection: one per server process, owned here, never pooled.

It knows PostgreSQL and nothing of sockets. It calls `look(conn)` (the
feed's poll, on this same connection) whenever rows may have committed, and
keeps writers from paying for NOTIFY while it can (docs/architecture.md
"Adaptive wake-up"):

- **awake**: it looks every `awake_interval` seconds. Writers see that no
  server sleeps and send no NOTIFY; they only hold a lock that keeps every
  server from falling asleep until their transaction has ended.
- after `awake_idle` seconds in which its looks found nothing, it tries to
  **fall asleep**: it takes the writers' window lock without waiting
  (failing means a writer is mid-transaction: it stays awake), marks itself
  asleep with a session lock, lets the window go and looks one last time.
- **asleep**: it waits for a NOTIFY, which writers now send, or for
  `poll_interval` (a safety net, with a `SELECT 1` probe: asyncpg does not
  notice a dead server until it next talks to it). Then it wakes up: drops
  the asleep mark and looks.

The marks are session locks on this connection, so whatever kills it ends
them too; the outer loop reconnects with capped, jittered backoff and looks
at once, since notifications sent while it was away are lost.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

import asyncpg

from pgbell.sql import Q

log = logging.getLogger(__name__)

CHANNEL = "pgbell_v1"
# How a DBA finds it in pg_stat_activity.
APPLICATION_NAME = "pgbell-listener"


class Listener:
    def __init__(
        self,
        dsn: str,
        look: Callable[[asyncpg.Connection], Awaitable[int]],
        poll_interval: float = 5.0,
        backoff_max: float = 10.0,
        awake_interval: float = 0.002,
        awake_idle: float = 0.05,
        step: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        """`look(conn)` fetches and dispatches what committed since its last
        call and returns how many rows it found. `step(name)`, if given, is
        awaited before each step ("look", "fall_asleep", "mark_asleep",
        "sleep", "wake_up"): tests use it to run every interleaving."""
        self._dsn = dsn
        self._look_fn = look
        self._poll_interval = poll_interval
        self._backoff_max = backoff_max
        self._awake_interval = awake_interval
        self._awake_idle = awake_idle
        self._step = step
        # set by a NOTIFY or the connection's end, cleared by each look; the
        # wait in progress, if any, is `_waiter`
        self._woken = False
        self._waiter: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        self.asleep = False
        self.reconnects = 0
        self.notifies_received = 0
        self.wakeups = 0  # looks
        self.sleeps = 0  # times it fell asleep

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="pgbell-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # bounded: shutdown must finish even if the task is wedged
            done, _ = await asyncio.wait([self._task], timeout=5)
            if not done:
                log.error("listener did not stop within 5 s")

    def _on_notify(self, *_: object) -> None:
        self.notifies_received += 1
        self._wake_now()

    def _wake_now(self) -> None:
        self._woken = True
        _release(self._waiter)

    async def _run(self) -> None:
        attempt = 0
        ever_connected = False
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self._dsn,
                    timeout=10,
                    server_settings={"application_name": APPLICATION_NAME},
                )
                # SET, not startup parameters: a session-mode PgBouncer in
                # between refuses startup parameters it does not know
                await conn.execute(Q.listener_session)
                await conn.add_listener(CHANNEL, self._on_notify)
                # A terminated connection wakes the loop at once instead of
                # waiting for the next probe.
                conn.add_termination_listener(lambda _conn: self._wake_now())
                if ever_connected:
                    self.reconnects += 1
                    log.info("listener reconnected", extra={"attempts": attempt})
                ever_connected = True
                self.connected = True
                attempt = 0
                await self._serve(conn)
            except asyncio.CancelledError:
                raise
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                log.warning("listener connection lost", extra={"error": repr(e)})
            except Exception:
                # a bug in a look must not stop deliveries for good
                log.exception("listener failed; reconnecting")
            finally:
                self.connected = False
                self.asleep = False
                if conn is not None:
                    conn.terminate()
            attempt += 1
            # full jitter: spread reconnects of many servers after an outage
            delay = random.uniform(0, min(self._backoff_max, 0.1 * 2**attempt))
            await asyncio.sleep(delay)

    async def _wait(self, conn: asyncpg.Connection, seconds: float) -> bool:
        """Until a NOTIFY (True) or `seconds` (False); raises if the
        connection is gone."""
        if not self._woken:
            # A future and a timer rather than asyncio.timeout around an
            # Event: an awake listener waits out its interval hundreds of
            # times a second, and a timeout that expires cancels the task
            # and raises, 40% more work a wait. (Not wait_for either: on
            # Python 3.11 it can leave a cancelled task waiting forever.)
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(seconds, _release, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        if conn.is_closed():
            raise ConnectionResetError("the LISTEN connection was closed by the server")
        return self._woken

    async def _at(self, name: str) -> None:
        if self._step is not None:
            await self._step(name)

    async def _look(self, conn: asyncpg.Connection) -> int:
        await self._at("look")
        self._woken = False
        self.wakeups += 1
        # Any failure ends this session: the feed's cursor did not move, and
        # the reconnect looks again at once.
        return await self._look_fn(conn)

    async def _fall_asleep(self, conn: asyncpg.Connection) -> bool:
        """Mark this server asleep, unless a writer is mid-transaction."""
        await self._at("fall_asleep")
        if not await conn.fetchval(Q.fall_asleep, timeout=5):
            return False
        await self._at("mark_asleep")
        row = await conn.fetchrow(Q.mark_asleep, timeout=5)
        if not row["released"]:
            raise RuntimeError("the window lock was not held")
        return bool(row["asleep"])

    async def _serve(self, conn: asyncpg.Connection) -> None:
        loop = asyncio.get_running_loop()
        # Connected: awake, and catch up with whatever committed meanwhile.
        busy_at = loop.time()
        while True:
            if not self.asleep:
                if await self._look(conn):
                    busy_at = loop.time()
                elif loop.time() - busy_at >= self._awake_idle and await self._fall_asleep(conn):
                    self.asleep = True
                    self.sleeps += 1
                    # the last look: whatever a writer that saw this server
                    # awake committed is visible now
                    if not await self._look(conn):
                        continue
                    await self._wake_up(conn)
                    busy_at = loop.time()
                await self._wait(conn, self._awake_interval)
            else:
                await self._at("sleep")
                if not await self._wait(conn, self._poll_interval):
                    # quiet interval: prove the connection is alive
                    await conn.fetchval("SELECT 1", timeout=5)
                await self._wake_up(conn)
                busy_at = loop.time()

    async def _wake_up(self, conn: asyncpg.Connection) -> None:
        await self._at("wake_up")
        await conn.fetchval(Q.wake_up, timeout=5)
        self.asleep = False


def _release(waiter: asyncio.Future[None] | None) -> None:
    """End the listener's wait, if it is still waiting."""
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
