"""The send path end to end: frames are written straight to each socket's
transport, a socket whose client does not read is bounded by the bytes
buffered for it (its backlog plus its transport's buffer), and order and
resume hold as before."""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest

from pgbell.http import keys
from tests.contract_client import assert_silent, frame, open_socket, snapshot
from tests.support import DEFAULT_WAIT, add_user, login
from tests.test_contract_slow_consumer import StalledClient, healthy_and_stalled

BUFFER_BYTES = 64 * 1024  # the smallest PGBELL_SEND_BUFFER_BYTES
BODY = "x" * 32_000


@pytest.fixture
async def bounded(start_server):
    """A server whose byte bound is far below its frame cap: only the bytes
    buffered can close a socket."""
    return await start_server(
        PGBELL_SEND_BUFFER_BYTES=str(BUFFER_BYTES),
        PGBELL_SEND_QUEUE_SIZE="100000",
        # the resume brings everything the stalled socket did not get at once
        PGBELL_RESUME_MAX_BYTES=str(64 * 1024 * 1024),
    )


def _server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """The complete unmasked frames (opcode, payload) in a server's stream."""
    frames, pos = [], 0
    while pos + 2 <= len(data):
        opcode, length, at = data[pos] & 0x0F, data[pos + 1] & 0x7F, pos + 2
        assert data[pos] & 0x80 and not data[pos + 1] & 0x80, "a fragmented or masked frame"
        if length == 126:
            length, at = int.from_bytes(data[at : at + 2], "big"), at + 2
        elif length == 127:
            length, at = int.from_bytes(data[at : at + 8], "big"), at + 8
        if at + length > len(data):
            break
        frames.append((opcode, data[at : at + length]))
        pos = at + length
    return frames


async def _read_to_close(stalled: StalledClient) -> list[tuple[int, bytes]]:
    """Read what the server sent the stalled client, up to its close frame."""
    loop = asyncio.get_running_loop()
    data = b""
    async with asyncio.timeout(DEFAULT_WAIT):
        while True:
            frames = _server_frames(data)
            if frames and frames[-1][0] == 0x8:
                return frames
            chunk = await loop.sock_recv(stalled.sock, 1 << 20)
            if not chunk:
                raise AssertionError("the server hung up without a close frame")
            data += chunk


async def _stall_one_of_two(server, http, database_url):
    """ann has a healthy socket and a stalled one; notifications
    of 32 kB, one per commit, each awaited on the healthy socket, until the stalled
    one is closed. Returns (titles inserted, titles the healthy socket got,
    frames the stalled one got, ann's token)."""
    uid = add_user(database_url, "ann")
    token = await login(http, server.base, "ann")
    stats = server.pgbell_app[keys.HUB].stats
    healthy, stalled = await healthy_and_stalled(server, token)
    inserted, healthy_got = [], []
    try:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            for i in range(400):
                title = f"Bulk {i}"
                await conn.execute(
                    "INSERT INTO pgbell.notifications (user_id, kind, title, body)"
                    " VALUES (%s, 'bulk', %s, %s)",
                    (uid, title, BODY),
                )
                inserted.append(title)
                got = await frame(healthy, "notification", f"{title} on the healthy socket")
                healthy_got.append(got["notification"]["title"])
                if stats.slow_consumers_closed:
                    break
        assert stats.slow_consumers_closed == 1, (
            f"the stalled socket was still open after {len(inserted)} frames of 32 kB"
        )
        stalled_frames = await _read_to_close(stalled)
    finally:
        stalled.close()
    await assert_silent(healthy, "the healthy socket, after the stalled one was closed")
    await healthy.close()
    return inserted, healthy_got, stalled_frames, token


async def test_a_stalled_socket_is_closed_by_bytes_while_its_twin_gets_everything(
    bounded, http, database_url
):
    # 400 frames, far below the frame cap of 100,000: the bytes closed it
    inserted, healthy_got, stalled_frames, _ = await _stall_one_of_two(bounded, http, database_url)
    assert healthy_got == inserted, "the healthy socket got every frame, in order"
    opcode, payload = stalled_frames[-1]
    assert (opcode, int.from_bytes(payload[:2], "big"), payload[2:]) == (
        0x8,
        1013,
        b"slow_consumer",
    )
    texts = [json.loads(p) for op, p in stalled_frames if op == 0x1]
    assert texts[0]["type"] == "snapshot", "the snapshot came first"
    titles = [t["notification"]["title"] for t in texts[1:]]
    assert titles == inserted[: len(titles)], "what the stalled socket got is a prefix, in order"


async def test_a_resume_after_the_byte_bound_close_recovers_everything(bounded, http, database_url):
    inserted, _, stalled_frames, token = await _stall_one_of_two(bounded, http, database_url)
    texts = [json.loads(p) for op, p in stalled_frames if op == 0x1]
    got = [t["notification"] for t in texts if t["type"] == "notification"]
    assert got, "the stalled socket took at least one notification before it backed up"
    ws = await open_socket(bounded.ws_base, token, since=got[-1]["id"], max_size=None)
    resumed = await snapshot(ws, f"on resume since={got[-1]['id']}")
    assert "missed_truncated" not in resumed
    # missed may repeat some the client has (see protocol.md): de-duplicated
    # by id, the two make up everything, in order
    by_id = {n["id"]: n["title"] for n in got + resumed["missed"]}
    assert [by_id[i] for i in sorted(by_id)] == inserted
    await ws.close()


async def test_many_frames_of_one_wake_up_reach_every_socket_in_order(server, http, database_url):
    uid = add_user(database_url, "ann")
    token = await login(http, server.base, "ann")
    sockets = [await open_socket(server.ws_base, token) for _ in range(4)]
    for i, ws in enumerate(sockets):
        await snapshot(ws, f"on socket {i}")
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO pgbell.notifications (user_id, kind, title, body)"
            " SELECT %s, 'bulk', 'Bulk ' || i, 'body ' || i FROM generate_series(1, 300) AS i",
            (uid,),
        )
    want = [f"Bulk {i}" for i in range(1, 301)]
    for i, ws in enumerate(sockets):
        got = [
            (await frame(ws, "notification", f"#{n} on socket {i}"))["notification"]["title"]
            for n in range(1, 301)
        ]
        assert got == want, f"socket {i}: the frames of one commit, in order"
        await assert_silent(ws, f"socket {i}, after the burst")
        await ws.close()
