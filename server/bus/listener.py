"""The LISTEN connection: one per server process, owned here, never pooled.

It knows PostgreSQL and nothing of sockets. It wakes `on_wake` when a
notification arrives on the channel, when it (re)connects (notifications
sent while it was away are lost, so the caller catches up from the table),
and every `poll_interval` seconds as a safety net. asyncpg does not notice a
dead server until it next talks to it, so a `SELECT 1` probe runs on every
quiet interval; any failure drops the connection and the outer loop
reconnects with capped, jittered backoff.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

import asyncpg

log = logging.getLogger(__name__)

CHANNEL = "pgbell_v1"
# How a DBA finds it in pg_stat_activity.
APPLICATION_NAME = "pgbell-listener"


class Listener:
    def __init__(
        self,
        dsn: str,
        on_wake: Callable[[], Awaitable[None]],
        poll_interval: float = 5.0,
        backoff_max: float = 10.0,
    ) -> None:
        self._dsn = dsn
        self._on_wake = on_wake
        self._poll_interval = poll_interval
        self._backoff_max = backoff_max
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        self.reconnects = 0
        self.notifies_received = 0
        self.wakeups = 0

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
        self._wake.set()

    async def _run(self) -> None:
        attempt = 0
        ever_connected = False
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self._dsn, timeout=10, server_settings={"application_name": APPLICATION_NAME}
                )
                await conn.add_listener(CHANNEL, self._on_notify)
                # A terminated connection wakes the loop at once instead of
                # waiting for the next probe.
                conn.add_termination_listener(lambda _conn: self._wake.set())
                if ever_connected:
                    self.reconnects += 1
                    log.info("listener reconnected", extra={"attempts": attempt})
                ever_connected = True
                self.connected = True
                attempt = 0
                # Catch up: whatever committed while we were not listening.
                self._wake.set()
                await self._serve(conn)
            except asyncio.CancelledError:
                raise
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                log.warning("listener connection lost", extra={"error": repr(e)})
            finally:
                self.connected = False
                if conn is not None:
                    conn.terminate()
            attempt += 1
            # full jitter: spread reconnects of many servers after an outage
            delay = random.uniform(0, min(self._backoff_max, 0.1 * 2**attempt))
            await asyncio.sleep(delay)

    async def _serve(self, conn: asyncpg.Connection) -> None:
        while True:
            try:
                # asyncio.timeout, not wait_for: on Python 3.11, wait_for around
                # Event.wait can leave a cancelled task waiting forever.
                async with asyncio.timeout(self._poll_interval):
                    await self._wake.wait()
            except TimeoutError:
                # quiet interval: prove the connection is alive, then poll anyway
                await conn.fetchval("SELECT 1", timeout=5)
            if conn.is_closed():
                raise ConnectionResetError("the LISTEN connection was closed by the server")
            self._wake.clear()
            self.wakeups += 1
            try:
                await self._on_wake()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The caller's cursor did not move: try again shortly.
                log.exception("wake-up handler failed; retrying")
                await asyncio.sleep(0.5)
                self._wake.set()
