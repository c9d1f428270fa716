"""The adaptive wake-up under real concurrency: nothing is lost.

Writers at READ COMMITTED, REPEATABLE READ and SERIALIZABLE commit (or roll
back) transactions of one to three pgbell.notify() statements, with pauses
between statements, while two servers (the real Listener and Feed, each
with every recipient connected) fall asleep and wake up every few
milliseconds, and a chaos task kills their LISTEN connections and restarts
their listeners at random. The writers work in short bursts; after each,
every server must have delivered every row committed so far within the
bound, with nothing else happening and its safety poll set to a minute:
a row missed by the last look before a server fell asleep, with no NOTIFY
to wake it, would show here. The seed is printed on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time

import asyncpg

from pgbell.bus.feed import Feed
from pgbell.bus.listener import APPLICATION_NAME, Listener
from tests.support import DEFAULT_WAIT

USERS = [f"user-{i}" for i in range(5)]
LEVELS = ["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"]
WRITERS = 4
SECONDS = float(os.environ.get("PGBELL_STRESS_SECONDS", "8"))


class Server:
    """A listener and its feed; the listener can be restarted, the feed's
    cursor goes on (as one server process whose LISTEN session is renewed)."""

    def __init__(self, url: str, pool: asyncpg.Pool) -> None:
        self.url = url
        self.feed = Feed(pool, lambda: USERS)
        self.delivered: set[int] = set()
        self.listener: Listener | None = None
        self.sleeps = self.notifies = 0
        self.looked = asyncio.Event()

    async def look(self, conn: asyncpg.Connection) -> int:
        batch = await self.feed.poll(conn)
        for frame in batch.frames:
            self.delivered |= frame.ids
        self.looked.set()
        return len(batch.frames)

    async def delivered_all(self, committed: set[int], deadline: float) -> set[int]:
        """Waits until every committed row was delivered; returns the missing ones."""
        while committed - self.delivered and time.monotonic() < deadline:
            self.looked.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deadline - time.monotonic()):
                    await self.looked.wait()
        return committed - self.delivered

    def start(self) -> None:
        self.listener = Listener(
            self.url, self.look, poll_interval=60, awake_interval=0.001, awake_idle=0.003
        )
        self.listener.start()

    async def restart(self) -> None:
        await self.stop()
        self.start()

    async def stop(self) -> None:
        if self.listener is not None:
            await self.listener.stop()
            self.sleeps += self.listener.sleeps
            self.notifies += self.listener.notifies_received
            self.listener = None


async def writer(
    conn: asyncpg.Connection, rng: random.Random, stop: float, committed: set[int]
) -> None:
    while time.monotonic() < stop:
        level = rng.choice(LEVELS)
        try:
            async with conn.transaction(isolation=level.lower().replace(" ", "_")):
                if rng.random() < 0.5:
                    # a snapshot taken well before the notification is written
                    await conn.fetchval("SELECT count(*) FROM pgbell.templates")
                    await asyncio.sleep(rng.uniform(0, 0.02))
                for _ in range(rng.randint(1, 3)):
                    users = rng.sample(USERS, rng.randint(1, 3))
                    await conn.fetchval("SELECT pgbell.notify('ping', $1::text[])", users)
                    await asyncio.sleep(rng.choice([0, 0, 0.001, 0.01]))
                ids = await conn.fetch(
                    "SELECT id FROM pgbell.notifications WHERE xid = pg_current_xact_id()"
                )
                if rng.random() < 0.1:
                    raise _Rollback
            committed.update(r["id"] for r in ids)
        except _Rollback:
            pass
        except asyncpg.SerializationError:
            pass  # nothing committed; the next loop writes again
        # quiet moments, in which the servers fall asleep
        await asyncio.sleep(rng.choice([0, 0.002, 0.01, 0.05]))


class _Rollback(Exception):
    pass


async def chaos(url: str, servers: list[Server], rng: random.Random, stop: float) -> int:
    admin = await asyncpg.connect(url)
    events = 0
    try:
        while time.monotonic() < stop:
            await asyncio.sleep(rng.uniform(0.05, 0.3))
            if rng.random() < 0.6:
                # kill the LISTEN sessions of this database, whatever step they are at
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = $1 AND datname = current_database()",
                    APPLICATION_NAME,
                )
            else:
                await rng.choice(servers).restart()
            events += 1
    finally:
        await admin.close()
    return events


async def test_writers_at_every_level_with_killed_and_restarted_listeners_lose_nothing(
    ping_database: str,
) -> None:
    seed = int(os.environ.get("PGBELL_STRESS_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    pool = await asyncpg.create_pool(ping_database, min_size=1, max_size=2)
    servers = [Server(ping_database, pool) for _ in range(2)]
    committed: set[int] = set()
    try:
        for s in servers:
            await s.feed.start()
            s.start()
        end = time.monotonic() + SECONDS
        chaos_task = asyncio.create_task(chaos(ping_database, servers, rng, end))
        conns = [await asyncpg.connect(ping_database) for _ in range(WRITERS)]
        bursts = 0
        while time.monotonic() < end:
            stop = time.monotonic() + rng.uniform(0.02, 0.2)
            await asyncio.gather(
                *(writer(c, random.Random(rng.random()), stop, committed) for c in conns)
            )
            bursts += 1
            deadline = time.monotonic() + DEFAULT_WAIT
            for i, s in enumerate(servers):
                missing = sorted(await s.delivered_all(committed, deadline))
                assert not missing, (
                    f"seed {seed}, burst {bursts}: server {i} did not deliver {len(missing)}"
                    f" of {len(committed)} committed rows, e.g. {missing[:5]}"
                )
        events = await chaos_task
        for c in conns:
            await c.close()
    finally:
        for s in servers:
            await s.stop()
        await pool.close()
    # the run went through what it is meant to: many rows, chaos, both paths
    assert len(committed) > 200, f"seed {seed}: only {len(committed)} rows committed"
    assert events > 5, f"seed {seed}: only {events} kills and restarts"
    assert bursts > 10, f"seed {seed}: only {bursts} bursts"
    assert all(s.sleeps > 10 and s.notifies > 0 for s in servers), (
        f"seed {seed}: servers fell asleep {[s.sleeps for s in servers]} times and"
        f" got {[s.notifies for s in servers]} NOTIFYs: the wake-up was not exercised"
    )
