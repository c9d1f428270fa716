"""The commit-safe feed: what committed since the last look, fetched in one go.

Ids are not commit order (a transaction holding id 10 can commit after one
holding id 11), so the feed does not remember "the last id". It remembers
the last snapshot it read under: its xmax and the transactions still running
then (xip). Next time, exactly the rows written by a transaction at or above
that xmax, or by one of those running ones, can be new; both are index
lookups on pgbell.notifications.xid. Knows PostgreSQL, not sockets: it
returns frames per user for the hub to route.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from pgbell.bus import wire
from pgbell.sql import Q

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cursor:
    xmax: str
    xip: tuple[str, ...]


@dataclass(frozen=True)
class Frame:
    user_id: str  # the recipient, as the application names it
    text: str
    ids: frozenset[int] = frozenset()  # notification ids carried, for de-duplication
    created_at: float | None = None  # epoch seconds of the row, for latency metrics


@dataclass
class FeedStats:
    polls: int = 0
    notifications_fetched: int = 0
    state_changes_fetched: int = 0
    last_batch: int = 0


class Feed:
    def __init__(self, pool: asyncpg.Pool, connected_users: Callable[[], list[str]]) -> None:
        self._pool = pool
        self._connected_users = connected_users
        self._cursor: Cursor | None = None
        self.stats = FeedStats()

    async def start(self) -> None:
        """Begin at the present: sockets get older rows from their snapshot."""
        async with self._pool.acquire() as conn:
            self._cursor = await self._snapshot(conn)

    @staticmethod
    async def _snapshot(conn: asyncpg.Connection) -> Cursor:
        row = await conn.fetchrow(Q.current_snapshot)
        return Cursor(row["xmax"], tuple(row["xip"]))

    async def poll(self) -> list[Frame]:
        """Everything committed since the last poll, as frames in id order."""
        if self._cursor is None:
            await self.start()
            return []
        prev = self._cursor
        async with self._pool.acquire() as conn:
            # One snapshot for the cursor, the rows and the counts, so they agree.
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                cursor = await self._snapshot(conn)
                # Read the users only now: a socket registered after this
                # point takes its own snapshot later, which sees these rows.
                users = self._connected_users()
                notes, changes, counts = [], [], {}
                if users:
                    xip = list(prev.xip)
                    notes = await conn.fetch(Q.new_notifications, prev.xmax, xip, users)
                    changes = await conn.fetch(Q.new_state_changes, prev.xmax, xip, users)
                    touched = {r["user_id"] for r in notes} | {r["user_id"] for r in changes}
                    if touched:
                        rows = await conn.fetch(Q.unread_counts, list(touched))
                        counts = {r["user_id"]: r["n"] for r in rows}
        self._cursor = cursor
        self.stats.polls += 1
        self.stats.notifications_fetched += len(notes)
        self.stats.state_changes_fetched += len(changes)
        self.stats.last_batch = len(notes) + len(changes)
        return _frames(notes, changes, counts)


def _frames(notes, changes, counts: dict[str, int]) -> list[Frame]:
    frames: list[Frame] = []
    # unread_count "as of that event": count back from the snapshot's total
    # over the later notifications of the same batch that are still unread.
    still_unread_after: dict[str, int] = defaultdict(int)
    per_note: list[tuple[asyncpg.Record, int]] = []
    for row in reversed(notes):
        uid = row["user_id"]
        per_note.append((row, counts.get(uid, 0) - still_unread_after[uid]))
        if row["read_at"] is None:
            still_unread_after[uid] += 1
    for row, count in reversed(per_note):
        text = wire.dumps(
            {
                "type": "notification",
                "notification": wire.notification(row),
                "unread_count": max(count, 0),
            }
        )
        frames.append(
            Frame(row["user_id"], text, frozenset((row["id"],)), row["created_at"].timestamp())
        )
    for row in changes:
        text = wire.dumps(
            {
                "type": row["change"],
                "ids": list(row["ids"]),
                "unread_count": counts.get(row["user_id"], 0),
            }
        )
        frames.append(Frame(row["user_id"], text))
    return frames
