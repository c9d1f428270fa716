"""Unit tier: the hub and the histogram, with fake sockets and no database.
The same behaviour is checked end to end against a real server in
test_contract_slow_consumer.py and test_delivery.py."""

from __future__ import annotations

import asyncio
import time

from pgbell.bus.histogram import Histogram
from pgbell.bus.hub import SLOW_CONSUMER_CLOSE, Hub, HubStats, Outgoing, Subscriber
from tests.support import wait_until


class FakeSocket:
    def __init__(self, stuck: bool = False) -> None:
        self.sent: list[str] = []
        self.closed: tuple[int, str] | None = None
        self._stuck = asyncio.Event() if stuck else None

    async def send(self, frame: str) -> None:
        if self._stuck is not None:
            await self._stuck.wait()  # a client that never reads
        self.sent.append(frame)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def subscribe(hub: Hub, user_id: int, queue: int = 16, stuck: bool = False):
    sock = FakeSocket(stuck)
    sub = Subscriber(user_id, sock.send, sock.close, queue, hub.stats)
    hub.add(sub)
    sub.start()
    return sub, sock


async def test_frames_go_to_every_socket_of_the_user_and_no_other():
    hub = Hub()
    subs = [subscribe(hub, 1), subscribe(hub, 1), subscribe(hub, 2)]
    assert hub.publish(1, "for one") == 2
    assert hub.publish(3, "for nobody") == 0
    await wait_until(lambda: all(s.sent for _, s in subs[:2]), "both tabs of user 1 got it")
    assert subs[2][1].sent == []
    assert hub.socket_count() == 3 and sorted(hub.user_ids()) == [1, 2]
    for sub, _ in subs:
        await sub.stop()


async def test_frames_already_in_the_snapshot_are_skipped():
    hub = Hub()
    sock = FakeSocket()
    sub = Subscriber(7, sock.send, sock.close, 16, hub.stats)
    hub.add(sub)
    # queued between registration and the snapshot, as in ws.py
    hub.publish(7, "note 10", frozenset({10}))
    hub.publish(7, "note 11", frozenset({11}))
    sub.start(already_sent=frozenset({10}))
    await wait_until(lambda: sock.sent, "the frame the snapshot did not carry")
    hub.publish(7, "pong")
    await wait_until(lambda: len(sock.sent) == 2, "the frame after it")
    assert sock.sent == ["note 11", "pong"]
    await sub.stop()


async def test_a_socket_that_never_reads_is_closed_and_others_keep_going():
    hub = Hub()
    slow, slow_sock = subscribe(hub, 1, queue=2, stuck=True)
    fast, fast_sock = subscribe(hub, 1, queue=2)
    for i in range(5):
        hub.publish(1, f"frame {i}")
        await wait_until(lambda i=i: len(fast_sock.sent) == i + 1, f"frame {i} on the fast socket")
    await wait_until(lambda: slow_sock.closed is not None, "the slow socket closed")
    assert slow_sock.closed == (SLOW_CONSUMER_CLOSE, "slow_consumer")
    assert hub.stats.slow_consumers_closed == 1
    assert fast_sock.closed is None
    for sub in (slow, fast):
        await sub.stop()


async def test_a_socket_is_closed_by_bytes_buffered_before_its_frame_cap():
    hub = Hub()
    sock = FakeSocket(stuck=True)
    sub = Subscriber(1, sock.send, sock.close, 1000, hub.stats, max_bytes=100)
    hub.add(sub)
    sub.start()
    hub.publish(1, "a" * 40)  # taken by the writer, stuck in send: still buffered
    hub.publish(1, "\u00e9" * 20)  # 20 characters, 40 bytes of UTF-8
    assert sub.buffered_bytes == 80 and not sub.closed
    hub.publish(1, "c" * 40)  # 120 bytes would wait: past the bound
    await wait_until(lambda: sock.closed is not None, "the socket closed by bytes")
    assert sock.closed == (SLOW_CONSUMER_CLOSE, "slow_consumer")
    assert hub.stats.slow_consumers_closed == 1
    await sub.stop()


async def test_one_frame_larger_than_the_byte_bound_still_goes_alone():
    hub = Hub()
    sock = FakeSocket()
    sub = Subscriber(1, sock.send, sock.close, 16, hub.stats, max_bytes=100)
    hub.add(sub)
    sub.start()
    hub.publish(1, "x" * 500)
    await wait_until(lambda: sock.sent, "the large frame")
    assert sock.closed is None and sub.buffered_bytes == 0
    await sub.stop()


async def test_deliveries_and_latency_count_notification_frames_only():
    hub = Hub()
    sub, sock = subscribe(hub, 1)
    hub.publish(1, "read frame")
    hub.publish(1, "notification frame", frozenset({5}), created_at=time.time() - 0.2)
    await wait_until(lambda: len(sock.sent) == 2, "both frames")
    assert hub.stats.frames_sent == 2
    assert hub.stats.notifications_delivered == 1
    assert hub.stats.latency.count == 1 and 0.2 <= hub.stats.latency.sum < 5
    await sub.stop()


def test_histogram_buckets_are_cumulative():
    h = Histogram([0.1, 1.0])
    for v in (0.05, 0.1, 0.5, 3.0):
        h.observe(v)
    assert h.cumulative() == [("0.1", 2), ("1", 3), ("+Inf", 4)]
    assert h.count == 4 and abs(h.sum - 3.65) < 1e-9
    assert isinstance(HubStats().latency, Histogram)


def test_histogram_observe_many_is_observe_of_each():
    values = [0.05, -0.5, 0.1, 0.5, 3.0, 0.1]
    one, many = Histogram([0.1, 1.0]), Histogram([0.1, 1.0])
    for v in values:
        one.observe(v)
    many.observe_many(values)
    assert many.cumulative() == one.cumulative() == [("0.1", 4), ("1", 5), ("+Inf", 6)]
    assert (many.count, many.sum) == (one.count, one.sum), "a negative value counts as 0"


def _versioned(hub: Hub, user_id: str, token_version: int | None):
    sock = FakeSocket()
    sub = Subscriber(user_id, sock.send, sock.close, 16, hub.stats, token_version=token_version)
    hub.add(sub)
    sub.start()
    return sub, sock


async def test_revoke_closes_older_pgbell_tokens_only():
    hub = Hub()
    old, old_sock = _versioned(hub, "5", 1)
    current, current_sock = _versioned(hub, "5", 2)
    app_token, _ = _versioned(hub, "5", None)  # the application's: never revoked by pgbell
    other, _ = _versioned(hub, "6", 1)
    assert hub.revoke("5", 2) == 1
    await wait_until(lambda: old_sock.closed, "the old token's socket closing")
    assert old_sock.closed == (4401, "unauthorized")
    for sub in (current, app_token, other):
        assert not sub.closed, "only the older pgbell token of that user is closed"
    # a deleted user: no pgbell token of theirs is valid
    assert hub.revoke("5", None) == 1
    await wait_until(lambda: current_sock.closed, "the current token's socket closing")
    assert not app_token.closed and not other.closed
    for sub in (old, current, app_token, other):
        await sub.stop()


async def test_a_socket_registering_after_the_revocation_is_closed_too():
    hub = Hub()
    hub.revoke("5", 3)  # seen by the feed while this socket's token was being checked
    late, sock = _versioned(hub, "5", 2)
    await wait_until(lambda: sock.closed, "the late socket closing")
    assert sock.closed == (4401, "unauthorized")
    fresh, fresh_sock = _versioned(hub, "5", 3)
    assert not fresh.closed and fresh_sock.closed is None
    await late.stop()
    await fresh.stop()


class FakeDirect:
    """A socket the hub writes to without waiting, as pgbell.http.wsdirect
    does: `full` makes its transport stop keeping up."""

    def __init__(self) -> None:
        self.written: list[str] = []
        self.writes = 0
        self.encoded = 0
        self.full = False
        self.held = 0
        self._drained = asyncio.Event()

    def writable(self) -> bool:
        return not self.full

    def buffered(self) -> int:
        return self.held

    def write(self, frames: list[Outgoing]) -> None:
        self.writes += 1
        for frame in frames:
            if frame.wire is None:
                self.encoded += 1
                frame.wire = frame.text.encode()
            self.written.append(frame.wire.decode())

    async def drained(self) -> None:
        while self.full:
            self._drained.clear()
            await self._drained.wait()

    def drain(self) -> None:
        self.full, self.held = False, 0
        self._drained.set()


def direct(hub: Hub, user_id: int, queue: int = 16, max_bytes: int | None = None):
    sock, out = FakeSocket(), FakeDirect()
    sub = Subscriber(
        user_id, sock.send, sock.close, queue, hub.stats, max_bytes=max_bytes, direct=out
    )
    hub.add(sub)
    sub.start()
    return sub, sock, out


async def test_a_frame_is_prepared_once_and_written_to_every_socket_in_order():
    hub = Hub()
    subs = [direct(hub, 1) for _ in range(3)]
    for i in range(5):
        hub.publish(1, f"frame {i}", frozenset({i + 1}), created_at=time.time())
    await wait_until(lambda: all(len(d.written) == 5 for _, _, d in subs), "5 frames on each")
    for sub, sock, out in subs:
        assert out.written == [f"frame {i}" for i in range(5)] and sock.sent == []
        assert not sub._task, "no task for a socket that keeps up"
    # the first socket framed each one; the others reused its bytes
    assert sum(d.encoded for _, _, d in subs) == 5
    # published in one turn of the loop: one write per socket, not per frame
    assert [d.writes for _, _, d in subs] == [1, 1, 1]
    assert hub.stats.frames_sent == 15 and hub.stats.notifications_delivered == 15
    assert hub.stats.latency.count == 15


async def test_a_direct_socket_skips_the_frames_already_in_its_snapshot():
    hub = Hub()
    sock, out = FakeSocket(), FakeDirect()
    sub = Subscriber(7, sock.send, sock.close, 16, hub.stats, max_bytes=1000, direct=out)
    hub.add(sub)
    # queued between registration and the snapshot, as in ws.py
    hub.publish(7, "note 10", frozenset({10}), created_at=time.time())
    hub.publish(7, "note 11", frozenset({11}), created_at=time.time())
    sub.start(already_sent=frozenset({10}))
    await wait_until(lambda: out.written, "the frame the snapshot did not carry")
    assert out.written == ["note 11"] and sub.buffered_bytes == 0
    assert hub.stats.frames_sent == hub.stats.notifications_delivered == 1
    assert hub.stats.latency.count == 1


async def test_a_backed_up_transport_keeps_a_backlog_and_resumes_in_order():
    hub = Hub()
    sub, _, out = direct(hub, 1)
    hub.publish(1, "first")
    await wait_until(lambda: out.written == ["first"], "the first frame")
    out.full = True
    for i in range(3):
        hub.publish(1, f"later {i}")
    await asyncio.sleep(0)  # the turn of the loop where the hub writes
    assert out.written == ["first"] and sub.buffered_bytes == 3 * 7
    out.drain()
    await wait_until(lambda: len(out.written) == 4, "the backlog after the drain")
    hub.publish(1, "after")
    await wait_until(lambda: len(out.written) == 5, "the frame after the backlog")
    assert out.written == ["first", "later 0", "later 1", "later 2", "after"]
    await sub.stop()


async def test_the_transport_buffer_counts_toward_the_byte_bound():
    hub = Hub()
    sub, sock, out = direct(hub, 1, max_bytes=100)
    healthy, _, healthy_out = direct(hub, 1, max_bytes=100)
    out.full, out.held = True, 70  # the client stopped reading
    hub.publish(1, "a" * 20)  # 90 bytes: within the bound
    assert not sub.closed
    hub.publish(1, "b" * 20)  # 110 bytes: past it
    await wait_until(lambda: sock.closed is not None, "the socket closed by bytes")
    assert sock.closed == (SLOW_CONSUMER_CLOSE, "slow_consumer")
    await wait_until(lambda: len(healthy_out.written) == 2, "both frames on the other socket")
    assert not healthy.closed and hub.stats.slow_consumers_closed == 1
    for s in (sub, healthy):
        await s.stop()


class BrokenDirect(FakeDirect):
    def write(self, frames: list[Outgoing]) -> None:
        raise ValueError("a bug")


async def test_a_socket_that_fails_to_write_is_closed_and_the_others_still_get_theirs():
    hub = Hub()
    sock = FakeSocket()
    broken = Subscriber(1, sock.send, sock.close, 16, hub.stats, direct=BrokenDirect())
    hub.add(broken)
    broken.start()
    healthy, _, out = direct(hub, 2)
    hub.publish(1, "for the broken one")  # written first in the loop's turn
    hub.publish(2, "for the healthy one")
    await wait_until(lambda: out.written == ["for the healthy one"], "the healthy socket's frame")
    await wait_until(lambda: sock.closed is not None, "the broken socket closed")
    assert sock.closed == (1011, "internal_error")
    for sub in (broken, healthy):
        await sub.stop()
