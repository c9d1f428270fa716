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


@dataclass(frozen=True)
class Batch:
    """What one poll found: frames to route, and the recipients whose older
    tokens were revoked, each with the token version still valid (None: the
    user is gone, no pgbell token of theirs is valid)."""

    frames: list[Frame]
    revoked: dict[str, int | None]


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

    async def poll(self) -> Batch:
        """Everything committed since the last poll, as frames in id order."""
        if self._cursor is None:
            await self.start()
            return Batch([], {})
        prev = self._cursor
        async with self._pool.acquire() as conn:
            # One snapshot for the cursor, the rows and the counts, so they agree.
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                # A generic plan cannot know how narrow `xid >= $1` is and scans
                # every row of the connected users instead: plan with the values.
                await conn.execute(Q.custom_plans)
                cursor = await self._snapshot(conn)
                # Read the users only now: a socket registered after this
                # point takes its own snapshot later, which sees these rows.
                users = self._connected_users()
                notes, changes, counts, revoked = [], [], {}, {}
                if users:
                    xip = list(prev.xip)
                    notes = await conn.fetch(Q.new_notifications, prev.xmax, xip, users)
                    changes = await conn.fetch(Q.new_state_changes, prev.xmax, xip, users)
                    revoked = await _revoked(conn, changes)
                    changes = [r for r in changes if r["change"] != "revoked"]
                    touched = {r["user_id"] for r in notes} | {r["user_id"] for r in changes}
                    if touched:
                        rows = await conn.fetch(Q.unread_counts, list(touched))
                        counts = {r["user_id"]: r["n"] for r in rows}
        self._cursor = cursor
        self.stats.polls += 1
        self.stats.notifications_fetched += len(notes)
        self.stats.state_changes_fetched += len(changes)
        self.stats.last_batch = len(notes) + len(changes)
        return Batch(_frames(notes, changes, counts), revoked)


async def _revoked(conn: asyncpg.Connection, changes) -> dict[str, int | None]:
    """Recipients whose pgbell tokens were revoked, with the version still valid."""
    users = {r["user_id"] for r in changes if r["change"] == "revoked"}
    if not users:
        return {}
    # only pgbell's own users are revoked, and their ids are bigints
    ids = [int(u) for u in users if u.isascii() and u.isdigit() and int(u) < 2**63]
    rows = await conn.fetch(Q.token_versions, ids)
    valid = {r["user_id"]: r["token_version"] for r in rows}
    return {u: valid.get(u) for u in users}


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
