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
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import asyncpg

from pgbell.bus import wire
from pgbell.sql import Q

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cursor:
    xmax: str
    xip: tuple[str, ...]


class Frame(NamedTuple):
    # a tuple, not a dataclass: one is made per notification row, and a
    # frozen dataclass costs twice as much to make
    user_id: str  # the recipient, as the application names it
    text: str
    ids: frozenset[int] = frozenset()  # notification ids carried, for de-duplication
    created_at: float | None = None  # epoch seconds of the row, for latency metrics


@dataclass(frozen=True)
class Batch:
    """What one poll found: frames to route, the recipients whose older
    tokens were revoked, each with the token version still valid (None: the
    user is gone, no pgbell token of theirs is valid), and how many new
    notification rows it saw in all, whoever they were for (the table is
    busy: the listener stays awake)."""

    frames: list[Frame]
    revoked: dict[str, int | None]
    seen: int = 0


@dataclass
class FeedStats:
    polls: int = 0
    polls_with_rows: int = 0  # looks that found something
    notifications_fetched: int = 0
    state_changes_fetched: int = 0
    last_batch: int = 0


# A user's unread count, kept by the feed, is counted again this long after
# it was last counted: the feed sees every new row and every change of read
# state, but not a row deleted (retention with unread rows, a DBA).
COUNT_REFRESH_SECONDS = 60.0
# at most this many such recounts ride along with one look
RECOUNTS_PER_LOOK = 200


class Feed:
    def __init__(self, pool: asyncpg.Pool, connected_users: Callable[[], list[str]]) -> None:
        self._pool = pool
        self._connected_users = connected_users
        self._cursor: Cursor | None = None
        # the snapshot before _cursor, and the users the last look was for
        self._older: Cursor | None = None
        self._users: set[str] = set()
        self._users_list: list[str] | None = None
        self._quiet = False  # the last look found nothing
        # user -> (unread count at _cursor, monotonic time it was counted),
        # oldest count first, for every user in _users
        self._counts: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self.stats = FeedStats()

    async def start(self) -> None:
        """Begin at the present: sockets get older rows from their snapshot."""
        async with self._pool.acquire() as conn:
            self._cursor = await self._snapshot(conn)

    @staticmethod
    async def _snapshot(conn: asyncpg.Connection) -> Cursor:
        row = await conn.fetchrow(Q.current_snapshot)
        return Cursor(row["xmax"], tuple(row["xip"]))

    async def poll(self, conn: asyncpg.Connection) -> Batch:
        """Everything committed since the last poll, as frames in id order,
        in one statement on `conn` (the listener's own connection)."""
        if self._cursor is None:
            self._cursor = self._older = await self._snapshot(conn)
            return Batch([], {})
        prev, older = self._cursor, self._older or self._cursor
        # The users are read before the statement takes its snapshot. A socket
        # that registers in between may take its own snapshot first, and this
        # look leaves its user out; the next look includes the user and reads
        # from the snapshot before this one, which that socket's snapshot
        # cannot precede (it registered after this look began).
        users = self._connected_users()
        if users is self._users_list and self._quiet:
            # Nothing last time, and the same users: ask cheaply first. No row
            # at all since `prev` means none for any of these users either.
            probe = await conn.fetchrow(Q.probe, prev.xmax, list(prev.xip))
            if not probe["new"]:
                self._older, self._cursor = prev, Cursor(probe["xmax"], tuple(probe["xip"]))
                self.stats.polls += 1
                self.stats.last_batch = 0
                return Batch([], {})
        if users is self._users_list:
            known, new = users, []
        else:
            known = [u for u in users if u in self._users]
            new = [u for u in users if u not in self._users]
        # the window before `prev` is for new users only: without any, NULL,
        # rather than `prev`'s own window looked up a second time
        older_xmax, older_xip = (older.xmax, list(older.xip)) if new else (None, None)
        now = time.monotonic()
        recount = new + self._stale(now)
        rows = await conn.fetch(
            Q.poll, prev.xmax, list(prev.xip), known, older_xmax, older_xip, new, recount
        )
        notes, changes, counted, revoked = [], [], {}, {}
        cursor, seen = prev, 0
        for row in rows:
            part = row["part"]
            if part == "n":
                notes.append(row)
            elif part == "c":
                if row["change"] == "revoked":
                    revoked[row["user_id"]] = row["n"]
                else:
                    changes.append(row)
            elif part == "u":
                counted[row["user_id"]] = row["n"]
            else:
                cursor = Cursor(row["xmax"], tuple(row["xip"]))
                seen = row["n"]
        if users is not self._users_list:
            self._users, self._users_list = set(users), users
            for gone in [u for u in self._counts if u not in self._users]:
                del self._counts[gone]
        counts, missing = self._count(notes, changes, recount, counted, now)
        if missing:
            # every user the feed looks for has a kept count since the look
            # that found them new; should one lack it, count it now, just
            # after this look's snapshot, rather than send a wrong count
            log.warning("unread counts missing for %d users; counting them", len(missing))
            for r in await conn.fetch(Q.unread_counts, list(missing)):
                counts[r["user_id"]] = r["n"]
            for user in missing:
                counts.setdefault(user, 0)
                self._counts[user] = (counts[user], now)
        self._quiet = not (seen or changes or revoked)
        self._older, self._cursor = prev, cursor
        self.stats.polls += 1
        self.stats.polls_with_rows += bool(notes or changes or revoked)
        self.stats.notifications_fetched += len(notes)
        self.stats.state_changes_fetched += len(changes)
        self.stats.last_batch = len(notes) + len(changes)
        return Batch(_frames(notes, changes, counts), revoked, seen)

    def _stale(self, now: float) -> list[str]:
        """Users whose count was taken too long ago, oldest first, a few."""
        stale = []
        for user, (_, at) in self._counts.items():
            if now - at < COUNT_REFRESH_SECONDS or len(stale) == RECOUNTS_PER_LOOK:
                break
            stale.append(user)
        return stale

    def _count(
        self, notes, changes, recount, counted, now: float
    ) -> tuple[dict[str, int], set[str]]:
        """Every user's unread count at the new snapshot: counted by the
        statement for the users asked for and those whose read state changed
        (absent: none), else the kept count plus their new unread rows; and
        the users with new rows who have neither (should never happen)."""
        exact = set(recount) | {r["user_id"] for r in changes}
        fresh_unread: dict[str, int] = {}  # every user with new rows
        for row in notes:
            user = row["user_id"]
            unread = row["read_at"] is None and row["archived_at"] is None
            fresh_unread[user] = fresh_unread.get(user, 0) + unread
        counts: dict[str, int] = {}
        for user in exact:
            if user in self._users:
                counts[user] = counted.get(user, 0)
        missing: set[str] = set()
        for user, n in fresh_unread.items():
            if user in counts:
                continue
            kept = self._counts.get(user)
            if kept is None:
                missing.add(user)
            else:
                counts[user] = kept[0] + n
        for user, n in counts.items():
            if user in exact:
                self._counts[user] = (n, now)
                self._counts.move_to_end(user)
            else:
                self._counts[user] = (n, self._counts[user][1])
        return counts, missing


def _frames(notes, changes, counts: dict[str, int]) -> list[Frame]:
    frames: list[Frame] = []
    # unread_count "as of that event": count back from the snapshot's total
    # over the later notifications of the same batch that are still unread,
    # from the last notification to the first.
    still_unread_after: dict[str, int] = defaultdict(int)
    for row in reversed(notes):
        user = row["user_id"]
        later = still_unread_after[user]
        count = max(counts.get(user, 0) - later, 0)
        # the notification object comes as JSON text from the statement
        text = f'{{"type":"notification","notification":{row["doc"]},"unread_count":{count}}}'
        frames.append(Frame(user, text, frozenset((row["id"],)), row["created_at"]))
        if row["read_at"] is None and row["archived_at"] is None:
            still_unread_after[user] = later + 1
    frames.reverse()
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
