"""The snapshot a socket gets first: its unread count, its newest unread
notifications and, on a resume, the ones it missed (PROTOCOL.md).

Sockets that connect together share one query: a request that arrives while
a batch is being read waits for the next one, and that one answers every
socket waiting (at most BATCH_SIZE) in one statement, so one consistent
snapshot of the database and one round trip. After a restart, 10,000
clients resuming at once cost PostgreSQL a few dozen statements, not 10,000
transactions. A batch reads at most BATCH_MISSED missed rows per resuming
socket; a socket that missed more is answered by `snapshot`, its own
repeatable-read transaction reading through a cursor within the byte budget.

Every socket is registered with the hub before it asks (pgbell.http.ws), and
a batch starts after every request in it was made: a row committed before
the batch's statement is in its snapshot, one committed after is delivered
live.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

import asyncpg

from pgbell.bus import wire
from pgbell.sql import Q

log = logging.getLogger(__name__)

# A resume returns at most this many missed rows (and at most
# PGBELL_RESUME_MAX_BYTES of them), oldest first, and says so with
# "missed_truncated": the client pages the rest over REST.
MAX_MISSED = 10_000
# rows asked for at a time while filling `missed`, before the byte budget
# gives a better guess; at most this many more
FIRST_MISSED_BATCH = 32
MAX_MISSED_BATCH = 1000
# sockets answered by one batch statement
BATCH_SIZE = 200
# missed rows a batch reads for one socket: one more says it missed more,
# and the socket reads its own snapshot (as many rows as one cursor batch)
BATCH_MISSED = FIRST_MISSED_BATCH
# batch statements in flight at once, each on its own pooled connection
MAX_BATCHES_IN_FLIGHT = 2


class MissedBudget:
    """`missed` within MAX_MISSED rows and `max_bytes` of JSON. The first row
    always goes, however large, so that a client resuming again from the
    last one it got always moves on."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.items: list[dict] = []
        self.used = 1  # "[" and "]"; each item adds itself and a comma

    def add(self, row: Any) -> bool:
        """Add `row`, or False when it does not fit (then `missed` is truncated)."""
        item = wire.notification(row)
        self.used += len(wire.dumps(item).encode()) + 1
        if len(self.items) == MAX_MISSED or (self.items and self.used > self.max_bytes):
            return False
        self.items.append(item)
        return True


async def _missed(
    conn: asyncpg.Connection, user_id: str, since: int, max_bytes: int
) -> tuple[list[dict], bool]:
    """The notifications a resume from `since` owes, oldest first, and True
    when some were left out (MissedBudget). Rows are read through a cursor, a
    batch at a time, so the server never holds much more than `max_bytes` of
    them either. Runs inside the snapshot's transaction."""
    cursor = await conn.cursor(Q.missed_since, user_id, since, MAX_MISSED + 1)
    budget = MissedBudget(max_bytes)
    batch = FIRST_MISSED_BATCH
    while True:
        rows = await cursor.fetch(batch)
        for row in rows:
            if not budget.add(row):
                return budget.items, True
        if len(rows) < batch:
            return budget.items, False
        # about as many rows as still fit, judging by those read so far
        fit = (max_bytes - budget.used) * len(budget.items) // max(budget.used, 1)
        batch = max(1, min(MAX_MISSED_BATCH, fit + 1))


def _frame(count: int, unread: list, missed: list[dict] | None, truncated: bool) -> dict:
    frame: dict[str, Any] = {
        "type": "snapshot",
        "unread_count": count,
        "notifications": [wire.notification(r) for r in unread],
    }
    if missed is not None:
        frame["missed"] = missed
        if truncated:
            frame["missed_truncated"] = True
    return frame


async def snapshot(
    pool: asyncpg.Pool, user_id: str, since: int | None, size: int, resume_max_bytes: int
) -> dict:
    """One socket's snapshot, in its own repeatable-read transaction."""
    async with pool.acquire() as conn:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            count = await conn.fetchval(Q.unread_count, user_id)
            unread = await conn.fetch(Q.snapshot_unread, user_id, size)
            missed, truncated = None, False
            if since is not None:
                missed, truncated = await _missed(conn, user_id, since, resume_max_bytes)
    return _frame(count, unread, missed, truncated)


class _Request:
    __slots__ = ("user_id", "since", "future")

    def __init__(self, user_id: str, since: int | None, future: asyncio.Future) -> None:
        self.user_id = user_id
        self.since = since
        self.future = future


class SnapshotBatcher:
    """Answers `get` for many sockets with one statement per batch."""

    def __init__(self, pool: asyncpg.Pool, size: int, resume_max_bytes: int) -> None:
        self._pool = pool
        self._size = size
        self._resume_max_bytes = resume_max_bytes
        self._waiting: list[_Request] = []
        # batches being read; a drain stops counting in the same step as it
        # finds nothing waiting, so a request never waits on one that ended
        self._in_flight = 0
        self._tasks: set[asyncio.Task] = set()  # the loop keeps only weak references
        self.batches = 0  # batch statements run
        self.alone = 0  # resumes that overflowed a batch and read their own

    async def get(self, user_id: str, since: int | None) -> dict:
        """The snapshot frame for a socket of `user_id` resuming from `since`."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(_Request(user_id, since, future))
        if self._in_flight == 0 or (
            self._in_flight < MAX_BATCHES_IN_FLIGHT and len(self._waiting) >= BATCH_SIZE
        ):
            # a task starts on the next turn of the loop: the sockets that
            # ask in this one join the same batch
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        frame = await future
        if frame is None:  # it missed more than a batch reads
            self.alone += 1
            frame = await snapshot(self._pool, user_id, since, self._size, self._resume_max_bytes)
        return frame

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = [r for r in self._waiting[:BATCH_SIZE] if not r.future.done()]
                del self._waiting[:BATCH_SIZE]
                if batch:
                    await self._answer(batch)
        finally:
            self._in_flight -= 1

    async def _answer(self, batch: list[_Request]) -> None:
        try:
            frames = await self._read(batch)
        except Exception as e:  # each socket closes as it would on its own query
            for r in batch:
                if not r.future.done():
                    r.future.set_exception(e)
            return
        except BaseException:  # cancelled (the server stops): so are its sockets
            for r in batch:
                r.future.cancel()
            raise
        for r, frame in zip(batch, frames, strict=True):
            if not r.future.done():
                r.future.set_result(frame)

    async def _read(self, batch: list[_Request]) -> list[dict | None]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                Q.snapshot_batch,
                [r.user_id for r in batch],
                [r.since for r in batch],
                self._size,
                BATCH_MISSED + 1,
            )
        self.batches += 1
        counts: dict[str, int] = {}
        unread: dict[str, list] = defaultdict(list)
        missed: dict[int, list] = defaultdict(list)
        for row in rows:
            part = row["part"]
            if part == "c":
                counts[row["user_id"]] = row["id"]
            elif part == "u":
                unread[row["user_id"]].append(row)
            else:
                missed[row["ord"] - 1].append(row)
        frames: list[dict | None] = []
        for i, r in enumerate(batch):
            newest_first = unread[r.user_id][::-1]
            if r.since is None:
                frames.append(_frame(counts[r.user_id], newest_first, None, False))
                continue
            owed = missed[i]
            if len(owed) > BATCH_MISSED:
                frames.append(None)
                continue
            budget = MissedBudget(self._resume_max_bytes)
            truncated = not all(budget.add(row) for row in owed)
            frames.append(_frame(counts[r.user_id], newest_first, budget.items, truncated))
        return frames
