"""The adaptive wake-up loses nothing, whatever the order of its steps.

A writer (BEGIN and a first statement that takes its snapshot, the
pgbell.notify() whose trigger decides whether to send a NOTIFY, COMMIT) and
the real Listener (look, fall_asleep, mark_asleep, sleep, wake_up) are
stepped one statement at a time by a scheduler, through every interleaving
of the writer's 3 steps with the listener's next 0 to SERVER_STEPS steps
(a full cycle: look, fall asleep, mark asleep, last look, sleep, wake up,
look, fall asleep), at each isolation level. A listener parked asleep is
woken for its next step by a NOTIFY from elsewhere (another writer, in
effect). When the schedule is over, the listener runs freely (from wherever
it was parked: asleep, it waits for a NOTIFY) and must deliver the row within
DEFAULT_WAIT seconds, with its safety poll set to a minute: the row comes
from a look of an awake server or from the writer's own NOTIFY, never from
the safety net.

The steps of one statement are atomic here; tests/test_wakeup_stress.py
runs writers and servers concurrently for real.
"""

from __future__ import annotations

import asyncio
import itertools

import asyncpg
import pytest

from pgbell.bus.feed import Feed
from pgbell.bus.listener import CHANNEL, Listener
from tests.support import DEFAULT_WAIT, connections_in_every_slot

WRITER_STEPS = 3
SERVER_STEPS = 7
LEVELS = ["read committed", "repeatable read", "serializable"]


def schedules() -> list[str]:
    """Every sequence of 3 'w' and 0 to SERVER_STEPS 's'."""
    return [
        "".join("w" if i in ws else "s" for i in range(WRITER_STEPS + k))
        for k in range(SERVER_STEPS + 1)
        for ws in itertools.combinations(range(WRITER_STEPS + k), WRITER_STEPS)
    ]


class Gate:
    """Holds the listener before each of its steps until the scheduler lets it go."""

    def __init__(self) -> None:
        self.free = False
        self.at: str | None = None
        self._arrived: asyncio.Queue[str] = asyncio.Queue()
        self._go = asyncio.Event()

    async def __call__(self, name: str) -> None:
        if self.free:
            return
        self._go.clear()
        self.at = name
        await self._arrived.put(name)
        await self._go.wait()

    async def arrival(self, after: str) -> str:
        try:
            async with asyncio.timeout(DEFAULT_WAIT):
                self.at = await self._arrived.get()
        except TimeoutError:
            raise AssertionError(f"the listener did not come back after {after!r}") from None
        return self.at

    async def step(self) -> str:
        was = self.at or "start"
        self._go.set()
        return await self.arrival(was)

    def release(self) -> None:
        self.free = True
        self._go.set()


class Writer:
    def __init__(self, conn: asyncpg.Connection, level: str, user: str) -> None:
        self._conn, self._level, self._user = conn, level, user
        self.done = 0

    async def step(self) -> None:
        if self.done == 0:
            await self._conn.execute(f"BEGIN ISOLATION LEVEL {self._level.upper()}")
            # the transaction's snapshot is taken here, before any server step
            await self._conn.fetchval("SELECT count(*) FROM pgbell.templates")
        elif self.done == 1:
            written = await self._conn.fetchval(
                "SELECT pgbell.notify('ping', ARRAY[$1::text])", self._user
            )
            assert written == 1
        else:
            await self._conn.execute("COMMIT")
        self.done += 1


async def run_schedule(
    url: str,
    pool: asyncpg.Pool,
    writer_conn: asyncpg.Connection,
    poker: asyncpg.Connection,
    schedule: str,
    level: str,
    n: int,
) -> None:
    user = f"u{n}"
    delivered = asyncio.Event()
    feed = Feed(pool, lambda: [user])
    await feed.start()

    async def look(conn: asyncpg.Connection) -> int:
        batch = await feed.poll(conn)
        if any(f.user_id == user for f in batch.frames):
            delivered.set()
        return len(batch.frames)

    gate = Gate()
    listener = Listener(url, look, poll_interval=60, awake_interval=0.001, awake_idle=0, step=gate)
    trace: list[str] = []
    listener.start()
    try:
        await gate.arrival("connect")
        writer = Writer(writer_conn, level, user)
        for who in schedule:
            if who == "w":
                await writer.step()
                trace.append(f"w{writer.done}")
            else:
                if gate.at == "sleep":
                    # asleep: only a NOTIFY moves it on; one from another writer
                    await poker.execute(f"NOTIFY {CHANNEL}")
                trace.append(gate.at or "?")
                await gate.step()
        gate.release()
        try:
            async with asyncio.timeout(DEFAULT_WAIT):
                await delivered.wait()
        except TimeoutError:
            raise AssertionError(
                f"{level}, schedule {schedule} ({' '.join(trace)}): the row was not delivered"
                f" (listener {'asleep' if listener.asleep else 'awake'},"
                f" {listener.notifies_received} NOTIFY received)"
            ) from None
    finally:
        gate.release()
        await listener.stop()


@pytest.mark.parametrize("level", LEVELS)
async def test_every_interleaving_delivers(ping_database: str, level: str) -> None:
    pool = await asyncpg.create_pool(ping_database, min_size=1, max_size=2)
    writers = await connections_in_every_slot(ping_database)
    poker = await asyncpg.connect(ping_database)
    try:
        for n, schedule in enumerate(schedules()):
            # n mod 16: each slot gets about 20 schedules of every length
            writer = writers[n % len(writers)]
            await run_schedule(ping_database, pool, writer, poker, schedule, level, n)
    finally:
        await pool.close()
        for writer in writers:
            await writer.close()
        await poker.close()


def test_the_schedules_cover_every_interleaving() -> None:
    all_ = schedules()
    assert len(all_) == len(set(all_)) == 330  # C(3, 3) + C(4, 3) + ... + C(10, 3)
    assert all(s.count("w") == WRITER_STEPS for s in all_)
