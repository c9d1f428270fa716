"""Fan-out: user id -> that user's open sockets. Knows nothing of PostgreSQL.

A frame published to a user is prepared once and offered to each of the
user's sockets, which keep it in a small backlog until the end of the event
loop's turn: then every socket whose transport keeps up gets its frames
written straight to the transport, the same prepared bytes for each
(see Direct), with no task and no queue wake-up per socket. Only a socket
whose transport is backed up gets a task, which waits for it to drain.

A client that does not read only ever fills its own backlog: past
`queue_size` frames, or past `max_bytes` bytes buffered (its backlog plus
what its transport holds), the socket is closed (1013, try again later) and
counted, and the client's reconnect with ?since= recovers what it did not
receive. The other sockets never wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from pgbell.bus.histogram import Histogram

log = logging.getLogger(__name__)

SLOW_CONSUMER_CLOSE = 1013
REVOKED_CLOSE = 4401  # as for any refused token
INTERNAL_ERROR_CLOSE = 1011
MAX_REMEMBERED_REVOCATIONS = 100_000
# what a socket whose snapshot carried no notification skips: one set for all
NOTHING_SENT: frozenset[int] = frozenset()


@dataclass
class HubStats:
    frames_sent: int = 0
    notifications_delivered: int = 0
    slow_consumers_closed: int = 0
    latency: Histogram = field(default_factory=Histogram)  # created_at -> written


def frame_bytes(frame: str) -> int:
    """The size of a text frame on the wire (UTF-8); cheap for ASCII text."""
    return len(frame) if frame.isascii() else len(frame.encode())


class Outgoing:
    """One frame on its way to the sockets of a user: the text, the
    notification ids it carries, when it was created (epoch seconds, for
    notifications), its size, and `wire`, the bytes a Direct made of it,
    kept for the user's next socket."""

    __slots__ = ("text", "ids", "created_at", "size", "wire")

    def __init__(
        self,
        text: str,
        ids: frozenset[int] = frozenset(),
        created_at: float | None = None,
        size: int | None = None,
    ) -> None:
        self.text = text
        self.ids = ids
        self.created_at = created_at
        self.size = frame_bytes(text) if size is None else size
        self.wire: bytes | None = None


class Direct(Protocol):
    """Writing to one socket without waiting (pgbell.http provides it).
    `write` puts the whole frame in the transport at once, so it never
    interleaves with the control frames the server library writes, and
    raises ConnectionError once the socket is closing."""

    def writable(self) -> bool:
        """True while the transport keeps up (its buffer is under its limit)."""

    def buffered(self) -> int:
        """Bytes the transport holds, not yet taken by the client."""

    def write(self, frames: list[Outgoing]) -> None:
        """Put these whole frames in the transport, in order, in one write."""

    async def drained(self) -> None:
        """Return once the transport is writable again."""


class Subscriber:
    """One socket as the hub sees it: a user id, a backlog, a send and a close.

    With `direct`, frames are written to the transport at the end of the
    loop's turn; without it (a socket that compresses its frames), each is
    awaited through `send` by a task that lives while the backlog is not
    empty. The backlog holds at most `queue_size` frames and, when
    `max_bytes` is set, the backlog and the transport together hold at most
    `max_bytes` bytes (a frame being sent counts until it was written): a
    client that does not read is closed past either.

    Kept lean, as there is one per socket: slots, and a backlog only while
    frames wait (an empty deque is 760 bytes)."""

    __slots__ = (
        "user_id",
        "token_version",
        "_send",
        "_close",
        "_direct",
        "_backlog",
        "_queue_size",
        "_max_bytes",
        "buffered_bytes",
        "_stats",
        "_started",
        "_scheduled",
        "_task",
        "_skip",
        "_schedule",
        "closed",
    )

    def __init__(
        self,
        user_id: str,
        send: Callable[[str], Awaitable[None]],
        close: Callable[[int, str], Awaitable[None]],
        queue_size: int,
        stats: HubStats,
        token_version: int | None = None,
        max_bytes: int | None = None,
        direct: Direct | None = None,
    ) -> None:
        self.user_id = user_id
        # the version a pgbell-issued token carries; None for the
        # application's tokens, which pgbell does not revoke
        self.token_version = token_version
        self._send = send
        self._close = close
        self._direct = direct
        self._backlog: deque[Outgoing] | None = None  # None while empty
        self._queue_size = queue_size
        self._max_bytes = max_bytes
        self.buffered_bytes = 0  # of the backlog
        self._stats = stats
        self._started = False
        self._scheduled = False
        self._task: asyncio.Task[None] | None = None
        self._skip = NOTHING_SENT
        self._schedule: Callable[[Subscriber], None] = _call_soon
        self.closed = False

    def offer(
        self,
        frame: str,
        ids: frozenset[int] = frozenset(),
        created_at: float | None = None,
        size: int | None = None,
    ) -> None:
        """Queue a frame without waiting; `ids` are the notification ids it
        carries, so frames already covered by the snapshot can be dropped;
        `created_at` (epoch seconds) times a notification's delivery; `size`
        is frame_bytes(frame), when the caller has it already."""
        self.put(Outgoing(frame, ids, created_at, size))

    def put(self, out: Outgoing) -> None:
        """offer() for a frame prepared once for all of the user's sockets."""
        if self.closed:
            return
        backlog = self._backlog
        if backlog is None:
            backlog = self._backlog = deque()
        if len(backlog) >= self._queue_size:
            self._slow_consumer()
            return
        if self._max_bytes is not None:
            used = self.buffered_bytes
            if self._direct is not None:
                used += self._direct.buffered()
            # A frame larger than the whole budget still goes when nothing
            # else waits: one big notification must not close every socket
            # of its user.
            if used and used + out.size > self._max_bytes:
                self._slow_consumer()
                return
        backlog.append(out)
        self.buffered_bytes += out.size
        if self._started and not self._scheduled and self._task is None:
            self._scheduled = True
            self._schedule(self)

    def _slow_consumer(self) -> None:
        self._stats.slow_consumers_closed += 1
        buffered = self.buffered_bytes
        if self._direct is not None:
            buffered += self._direct.buffered()
        log.warning(
            "closing slow consumer",
            extra={"user_id": self.user_id, "buffered_bytes": buffered},
        )
        self.close_now(SLOW_CONSUMER_CLOSE, "slow_consumer")

    def close_now(self, code: int, reason: str) -> None:
        """Close this socket without waiting; frames still queued are dropped."""
        if self.closed:
            return
        self.closed = True
        asyncio.get_running_loop().create_task(self._close(code, reason))

    def start(self, already_sent: frozenset[int] = NOTHING_SENT) -> None:
        """Begin sending queued frames, skipping notifications already sent in
        the snapshot (the backlog may hold frames from before it was taken)."""
        self._skip = already_sent or NOTHING_SENT
        self._started = True
        if self._backlog and not self._scheduled:
            self._scheduled = True
            self._schedule(self)

    def flush(self) -> None:
        """Write what the backlog holds, at the end of the loop's turn: at
        once while the transport keeps up, else through a task."""
        self._scheduled = False
        if self.closed or self._task is not None or not self._backlog:
            return
        if self._direct is not None:
            self._write_ready()
            if not self._backlog or self.closed:
                return
        self._task = asyncio.get_running_loop().create_task(self._writer())

    def _write_ready(self) -> None:
        """Write the backlog to the transport, in one write, if it keeps up."""
        direct = self._direct
        assert direct is not None
        if not direct.writable():
            return
        backlog, skip = self._backlog, self._skip
        if not backlog:
            return
        frames = [out for out in backlog if not (out.ids and out.ids <= skip)]
        self._backlog = None
        self.buffered_bytes = 0
        if not frames:
            return
        # the metrics once per write, not once per frame
        now = time.time()
        latencies = [now - out.created_at for out in frames if out.created_at is not None]
        stats = self._stats
        stats.frames_sent += len(frames)
        stats.notifications_delivered += len(latencies)
        stats.latency.observe_many(latencies)
        try:
            direct.write(frames)
        except ConnectionError:
            self.closed = True  # the socket is closing; its handler cleans up

    async def _writer(self) -> None:
        """Send the backlog, waiting on the socket; ends once it is empty."""
        try:
            while self._backlog and not self.closed:
                if self._direct is not None:
                    await self._direct.drained()
                    self._write_ready()
                    continue
                backlog = self._backlog
                out = backlog[0]
                if not (out.ids and out.ids <= self._skip):
                    try:
                        # the frame counts as buffered until the socket took
                        # it: for a client that does not read, this is where
                        # it waits
                        await self._send(out.text)
                    finally:
                        backlog.popleft()
                        self.buffered_bytes -= out.size
                    self._stats.frames_sent += 1
                    if out.created_at is not None:
                        self._stats.notifications_delivered += 1
                        self._stats.latency.observe(time.time() - out.created_at)
                else:
                    backlog.popleft()
                    self.buffered_bytes -= out.size
        except (ConnectionError, RuntimeError):
            self.closed = True  # the socket is closing; its handler cleans up
        finally:
            self._task = None
            if not self._backlog:
                self._backlog = None

    async def stop(self) -> None:
        self.closed = True
        task = self._task
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass


def _call_soon(sub: Subscriber) -> None:
    asyncio.get_running_loop().call_soon(sub.flush)


class Hub:
    def __init__(self) -> None:
        self._by_user: dict[str, set[Subscriber]] = {}
        # the token version still valid per user, after a revocation, so that
        # a socket whose token was checked just before it lands is caught too
        self._valid_version: OrderedDict[str, int | None] = OrderedDict()
        self.stats = HubStats()
        # sockets with frames to write at the end of this turn of the loop
        self._due: list[Subscriber] = []
        # user_ids(), kept until a user comes or goes: the feed asks on every look
        self._user_list: list[str] | None = None
        # one bound method for every socket, not one each
        self._schedule: Callable[[Subscriber], None] = self._flush_soon

    def add(self, sub: Subscriber) -> None:
        sub._schedule = self._schedule
        if sub.user_id not in self._by_user:
            self._user_list = None
        self._by_user.setdefault(sub.user_id, set()).add(sub)
        if sub.user_id in self._valid_version:
            self._revoke_if_older(sub, self._valid_version[sub.user_id])

    def _flush_soon(self, sub: Subscriber) -> None:
        # one callback per turn of the loop, however many sockets
        if not self._due:
            asyncio.get_running_loop().call_soon(self._flush)
        self._due.append(sub)

    def _flush(self) -> None:
        due, self._due = self._due, []
        for sub in due:
            try:
                sub.flush()
            except Exception:
                # a bug writing to one socket must not starve the others
                log.exception("writing to a socket failed", extra={"user_id": sub.user_id})
                sub.close_now(INTERNAL_ERROR_CLOSE, "internal_error")

    def revoke(self, user_id: str, valid_version: int | None) -> int:
        """Close (4401) the user's sockets whose pgbell token is not of
        `valid_version` (None: none is valid); returns how many."""
        self._valid_version[user_id] = valid_version
        self._valid_version.move_to_end(user_id)
        while len(self._valid_version) > MAX_REMEMBERED_REVOCATIONS:
            self._valid_version.popitem(last=False)
        return sum(self._revoke_if_older(s, valid_version) for s in self._by_user.get(user_id, ()))

    @staticmethod
    def _revoke_if_older(sub: Subscriber, valid_version: int | None) -> bool:
        if sub.closed or sub.token_version is None or sub.token_version == valid_version:
            return False
        sub.close_now(REVOKED_CLOSE, "unauthorized")
        return True

    def remove(self, sub: Subscriber) -> None:
        subs = self._by_user.get(sub.user_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_user[sub.user_id]
                self._user_list = None

    def user_ids(self) -> list[str]:
        """The users with a socket here; the same list object until that
        changes (do not modify it)."""
        if self._user_list is None:
            self._user_list = list(self._by_user)
        return self._user_list

    def sockets_of(self, user_id: str) -> int:
        return len(self._by_user.get(user_id, ()))

    def socket_count(self) -> int:
        return sum(len(s) for s in self._by_user.values())

    def publish(
        self,
        user_id: str,
        frame: str,
        ids: frozenset[int] = frozenset(),
        created_at: float | None = None,
    ) -> int:
        """Queue `frame` on every socket of `user_id`; returns how many."""
        subs = self._by_user.get(user_id, ())
        out = Outgoing(frame, ids, created_at)
        for sub in tuple(subs):
            sub.put(out)
        return len(subs)

    def all_subscribers(self) -> list[Subscriber]:
        return [s for subs in self._by_user.values() for s in subs]
