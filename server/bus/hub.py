"""Fan-out: user id -> that user's open sockets. Knows nothing of PostgreSQL.

Each socket has a bounded queue and one writer task, so a client that does
not read only ever fills its own queue: when the queue is full (in frames, or
in bytes buffered) the socket is closed (1013, try again later) and counted,
and the client's reconnect with ?since= recovers what it did not receive.
The other sockets never wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pgbell.bus.histogram import Histogram

log = logging.getLogger(__name__)

SLOW_CONSUMER_CLOSE = 1013
REVOKED_CLOSE = 4401  # as for any refused token
MAX_REMEMBERED_REVOCATIONS = 100_000


@dataclass
class HubStats:
    frames_sent: int = 0
    notifications_delivered: int = 0
    slow_consumers_closed: int = 0
    latency: Histogram = field(default_factory=Histogram)  # created_at -> written


def frame_bytes(frame: str) -> int:
    """The size of a text frame on the wire (UTF-8); cheap for ASCII text."""
    return len(frame) if frame.isascii() else len(frame.encode())


class Subscriber:
    """One socket as the hub sees it: a user id, a queue, a send and a close.

    The queue holds at most `queue_size` frames and, when `max_bytes` is set,
    at most `max_bytes` bytes of frames not yet written (the one being
    written included): a client that does not read is closed past either."""

    def __init__(
        self,
        user_id: str,
        send: Callable[[str], Awaitable[None]],
        close: Callable[[int, str], Awaitable[None]],
        queue_size: int,
        stats: HubStats,
        token_version: int | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self.user_id = user_id
        # the version a pgbell-issued token carries; None for the
        # application's tokens, which pgbell does not revoke
        self.token_version = token_version
        self._send = send
        self._close = close
        self._queue: asyncio.Queue[tuple[str, frozenset[int], float | None, int]] = asyncio.Queue(
            queue_size
        )
        self._max_bytes = max_bytes
        self.buffered_bytes = 0
        self._stats = stats
        self._task: asyncio.Task[None] | None = None
        self._skip: frozenset[int] = frozenset()
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
        if self.closed:
            return
        size = frame_bytes(frame) if size is None else size
        # A frame larger than the whole budget still goes when nothing else
        # waits: one big notification must not close every socket of its user.
        if (
            self._max_bytes is not None
            and self.buffered_bytes
            and self.buffered_bytes + size > self._max_bytes
        ):
            self._slow_consumer()
            return
        try:
            self._queue.put_nowait((frame, ids, created_at, size))
        except asyncio.QueueFull:
            self._slow_consumer()
            return
        self.buffered_bytes += size

    def _slow_consumer(self) -> None:
        self._stats.slow_consumers_closed += 1
        log.warning(
            "closing slow consumer",
            extra={"user_id": self.user_id, "buffered_bytes": self.buffered_bytes},
        )
        self.close_now(SLOW_CONSUMER_CLOSE, "slow_consumer")

    def close_now(self, code: int, reason: str) -> None:
        """Close this socket without waiting; frames still queued are dropped."""
        if self.closed:
            return
        self.closed = True
        asyncio.get_running_loop().create_task(self._close(code, reason))

    def start(self, already_sent: frozenset[int] = frozenset()) -> None:
        """Begin sending queued frames, skipping notifications already sent in
        the snapshot (the queue may hold frames from before it was taken)."""
        self._skip = already_sent
        self._task = asyncio.get_running_loop().create_task(self._writer())

    async def _writer(self) -> None:
        while True:
            frame, ids, created_at, size = await self._queue.get()
            if ids and ids <= self._skip:
                self.buffered_bytes -= size
                continue
            try:
                # the frame counts as buffered until the transport took it:
                # for a client that does not read, this await is where it waits
                await self._send(frame)
            except (ConnectionError, RuntimeError):
                return  # the socket is closing; its handler cleans up
            finally:
                self.buffered_bytes -= size
            self._stats.frames_sent += 1
            if created_at is not None:
                self._stats.notifications_delivered += 1
                self._stats.latency.observe(time.time() - created_at)

    async def stop(self) -> None:
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


class Hub:
    def __init__(self) -> None:
        self._by_user: dict[str, set[Subscriber]] = {}
        # the token version still valid per user, after a revocation, so that
        # a socket whose token was checked just before it lands is caught too
        self._valid_version: OrderedDict[str, int | None] = OrderedDict()
        self.stats = HubStats()

    def add(self, sub: Subscriber) -> None:
        self._by_user.setdefault(sub.user_id, set()).add(sub)
        if sub.user_id in self._valid_version:
            self._revoke_if_older(sub, self._valid_version[sub.user_id])

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

    def user_ids(self) -> list[str]:
        return list(self._by_user)

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
        size = frame_bytes(frame)
        for sub in tuple(subs):
            sub.offer(frame, ids, created_at, size)
        return len(subs)

    def all_subscribers(self) -> list[Subscriber]:
        return [s for subs in self._by_user.values() for s in subs]
