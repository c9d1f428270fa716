"""Hostile input over /ws against a real server: a frame nested past the
parser's depth gets an error frame and the socket stays; a resume is bounded
in bytes; a client that does not read is closed by bytes buffered, not only
by frames queued; read frames are rate-limited per socket; a failure after
the handshake closes the socket with a code, never an HTTP 500 written into it."""

from __future__ import annotations

import asyncio
import json

import psycopg

from pgbell.http import keys
from tests.contract_client import (
    assert_silent,
    closed,
    database_outage,
    frame,
    mint,
    open_socket,
    snapshot,
)
from tests.support import DEFAULT_WAIT, add_user, login, wait_until
from tests.test_contract_slow_consumer import StalledClient

DEPTH = 5000


async def _next(ws, where: str) -> dict:
    """The next frame, whatever its type; fails saying what did not arrive."""
    try:
        return json.loads(await asyncio.wait_for(ws.recv(), DEFAULT_WAIT))
    except TimeoutError:
        raise AssertionError(f"no frame {where} within {DEFAULT_WAIT} s") from None


async def _notify(database_url: str, user_id: int, count: int, body: str = "") -> list[int]:
    """`count` notifications for one user in one transaction; their ids, ascending."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(
            "INSERT INTO pgbell.notifications (user_id, kind, title, body)"
            " SELECT %s, 'bulk', 'Bulk ' || i, %s FROM generate_series(1, %s) AS i"
            " RETURNING id",
            (str(user_id), body, count),
        )
        return sorted(r[0] for r in await cur.fetchall())


async def test_deeply_nested_frame_gets_an_error_and_the_socket_stays(server, http, database_url):
    add_user(database_url, "ann")
    ws = await open_socket(server.ws_base, await login(http, server.base, "ann"))
    await snapshot(ws, "before the deep frames")
    for deep in ("[" * DEPTH + "]" * DEPTH, '{"type":' * DEPTH + '"ping"' + "}" * DEPTH):
        await ws.send(deep)
        error = await frame(ws, "error", "after a frame nested 5000 deep")
        assert error["error"]["code"] == "invalid_request", error
        await assert_silent(ws, "after the deep frame")  # still answers a ping
    await ws.close()


async def test_resume_since_0_is_bounded_in_bytes_and_says_truncated(
    start_server, http, database_url
):
    server = await start_server(PGBELL_RESUME_MAX_BYTES="16384")  # the least it may be
    uid = add_user(database_url, "ann")
    ids = await _notify(database_url, uid, 400, body="b" * 200)  # about 140 kB of JSON
    ws = await open_socket(
        server.ws_base, await login(http, server.base, "ann"), since=0, max_size=None
    )
    snap = await snapshot(ws, "on resume since=0 over 400 notifications")
    missed = snap["missed"]
    assert len(json.dumps(missed, separators=(",", ":")).encode()) <= 16384
    assert snap.get("missed_truncated") is True, "a cut resume must say so"
    # the oldest first, without a gap: the client pages the rest over REST
    assert missed and [n["id"] for n in missed] == ids[: len(missed)]
    await ws.close()


async def test_resuming_from_the_last_received_gets_through_one_large_transaction(
    start_server, http, database_url
):
    """A cut resume says "resume again from the last one received": rows of
    the transaction that wrote `since`, below it, are not sent again, so
    each resume moves on however many rows that transaction wrote."""
    server = await start_server(PGBELL_RESUME_MAX_BYTES="16384")
    uid = add_user(database_url, "ann")
    ids = await _notify(database_url, uid, 300, body="b" * 200)  # one transaction
    token = await login(http, server.base, "ann")
    received: list[int] = []
    since = 0
    for resume in range(len(ids)):
        ws = await open_socket(server.ws_base, token, since=since, max_size=None)
        snap = await snapshot(ws, f"on resume {resume} from {since}")
        await ws.close()
        got = [n["id"] for n in snap["missed"]]
        assert got and got[0] > since, f"resume {resume} from {since} sent {got[:3]}... again"
        received += got
        since = got[-1]
        if not snap.get("missed_truncated"):
            break
    assert received == ids, "every row once, in order, across the resumes"
    assert resume > 1, "the bound must cut this resume several times"


async def test_resume_always_carries_at_least_one_notification(start_server, http, database_url):
    """One notification larger than the bound still goes, alone: a client
    resuming from just before it would otherwise never get past it."""
    server = await start_server(PGBELL_RESUME_MAX_BYTES="16384")
    uid = add_user(database_url, "ann")
    big, small = await _notify(database_url, uid, 2, body="b" * 20_000)
    ws = await open_socket(
        server.ws_base, await login(http, server.base, "ann"), since=0, max_size=None
    )
    snap = await snapshot(ws, "on resume over a notification larger than the bound")
    assert [n["id"] for n in snap["missed"]] == [big] and snap["missed_truncated"] is True
    await ws.close()
    ws = await open_socket(
        server.ws_base, await login(http, server.base, "ann"), since=big, max_size=None
    )
    snap = await snapshot(ws, "on the next resume")
    assert [n["id"] for n in snap["missed"]] == [small] and "missed_truncated" not in snap
    await ws.close()


async def test_client_that_does_not_read_is_closed_by_bytes_buffered(
    start_server, http, database_url
):
    # 64 KiB buffered per socket at most; the frame cap stays at its 16384
    server = await start_server(PGBELL_SEND_BUFFER_BYTES="65536")
    assert server.pgbell_app[keys.SETTINGS].send_queue_size == 16384
    stats = server.pgbell_app[keys.HUB].stats
    uid = add_user(database_url, "ann")
    token = await login(http, server.base, "ann")
    healthy = await open_socket(server.ws_base, token, max_size=None)
    await snapshot(healthy, "on the healthy socket")
    stalled = StalledClient(server.host, server.port)
    await stalled.handshake(token)
    await wait_until(lambda: server.pgbell_app[keys.HUB].socket_count() == 2, "both sockets in")

    sent = 0
    try:
        # one 32 kB notification per commit, each awaited on the healthy socket
        while not stats.slow_consumers_closed and sent < 300:
            await _notify(database_url, uid, 1, body="x" * 32_000)
            sent += 1
            await frame(healthy, "notification", f"#{sent} on the healthy socket")
        assert stats.slow_consumers_closed == 1, (
            f"a socket that read nothing was still open after {sent} frames of 32 kB"
        )
        assert await stalled.close_code() == 1013
    finally:
        stalled.close()
    await assert_silent(healthy, "the healthy socket, after the stalled one was closed")
    await healthy.close()


async def test_a_burst_of_read_frames_is_rate_limited_and_the_socket_stays(
    start_server, http, database_url
):
    # one read a second, bursts of two: 100 frames at once cannot all pass
    server = await start_server(PGBELL_WS_READS_PER_SECOND="1")
    uid = add_user(database_url, "ann")
    (note,) = await _notify(database_url, uid, 1)
    ws = await open_socket(server.ws_base, await login(http, server.base, "ann"))
    await snapshot(ws, "before the burst")
    for _ in range(100):
        await ws.send(json.dumps({"type": "read", "ids": [note]}))
    await ws.send(json.dumps({"type": "ping"}))
    limited, kinds = 0, []
    while True:  # the socket's own answers keep their order: the pong comes last
        got = await _next(ws, "after 100 read frames and a ping")
        if got["type"] == "pong":
            break
        kinds.append(got["type"])
        if got["type"] == "error":
            assert got["error"]["code"] == "rate_limited", got
            assert "read" in got["error"]["message"], got
            limited += 1
    # the bucket starts full: the first two went through, and the first of them read it
    assert 1 <= limited <= 98, f"{limited} of 100 read frames were refused"
    # The read frame comes back through the trigger and the listener, not as
    # an answer of the socket, so it may arrive after the pong.
    if "read" not in kinds:
        got = await _next(ws, "the read frame of the one read that went through")
        kinds.append(got["type"])
    assert kinds.count("read") == 1, kinds
    await assert_silent(ws, "after the burst")
    await ws.close()


async def test_a_snapshot_that_fails_closes_1011_and_the_server_goes_on(server, http, database_url):
    uid = add_user(database_url, "ann")
    token = await login(http, server.base, "ann")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE pgbell.notifications RENAME TO notifications_away")
        try:
            ws = await open_socket(server.ws_base, token)
            code, reason = await closed(ws, "a socket whose snapshot query failed")
            assert (code, reason) == (1011, "internal_error")
        finally:
            conn.execute("ALTER TABLE pgbell.notifications_away RENAME TO notifications")
    (note,) = await _notify(database_url, uid, 1)
    ws = await open_socket(server.ws_base, token)
    first = await snapshot(ws, "once the table is back")
    assert [n["id"] for n in first["notifications"]] == [note]
    await ws.close()


async def test_a_database_outage_at_connect_closes_1013(server, database_url, pg_url):
    # a token pgbell did not issue needs no database to check: the snapshot fails
    uid = add_user(database_url, "ann")
    async with database_outage(pg_url, database_url):
        ws = await open_socket(server.ws_base, mint(uid))
        code, reason = await closed(ws, "a socket opened while the database refuses")
        assert (code, reason) == (1013, "unavailable")
