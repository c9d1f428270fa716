"""Slow-consumer isolation: a socket that never reads fills only its own
queue and is closed with 1013; the user's other sockets keep their pace."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import socket
import time

import psycopg
import pytest

from pgbell.config import Settings
from pgbell.http import keys
from tests.contract_client import assert_silent, closed, frame, open_socket, snapshot
from tests.support import add_user, insert_deal, login, wait_until


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings with a queue of 8 frames per socket
    (PGBELL_SEND_QUEUE_SIZE)."""
    return dataclasses.replace(settings, send_queue_size=8)


class StalledClient:
    """A WebSocket client over raw TCP that completes the handshake and then
    never reads: a tiny receive buffer makes the server's writes back up."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.setblocking(False)

    async def handshake(self, token: str) -> None:
        loop = asyncio.get_running_loop()
        await loop.sock_connect(self.sock, (self.host, self.port))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws?token={token} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await loop.sock_sendall(self.sock, request.encode())
        head = b""
        async with asyncio.timeout(5):
            while b"\r\n\r\n" not in head:
                head += await loop.sock_recv(self.sock, 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    async def close_code(self, timeout: float = 10) -> int:
        """Now read everything the server sent, up to its close frame."""
        loop = asyncio.get_running_loop()
        data = b""
        async with asyncio.timeout(timeout):
            while True:
                code = _close_code(data)
                if code is not None:
                    return code
                chunk = await loop.sock_recv(self.sock, 1 << 20)
                if not chunk:
                    raise AssertionError("the server hung up without a close frame")
                data += chunk

    def close(self) -> None:
        self.sock.close()


async def healthy_and_stalled(server, token: str):
    """Two sockets of one user: a healthy client's, past its snapshot, and a
    StalledClient's, both registered with the hub."""
    healthy = await open_socket(server.ws_base, token, max_size=None)
    await snapshot(healthy, "on the healthy socket")
    stalled = StalledClient(server.host, server.port)
    await stalled.handshake(token)
    await wait_until(lambda: server.pgbell_app[keys.HUB].socket_count() == 2, "both sockets in")
    return healthy, stalled


def _close_code(data: bytes) -> int | None:
    """The close code in a stream of unmasked server frames, once complete."""
    pos = 0
    while pos + 2 <= len(data):
        opcode, length = data[pos] & 0x0F, data[pos + 1] & 0x7F
        pos += 2
        if length == 126:
            length, pos = int.from_bytes(data[pos : pos + 2], "big"), pos + 2
        elif length == 127:
            length, pos = int.from_bytes(data[pos : pos + 8], "big"), pos + 8
        if pos + length > len(data):
            return None
        if opcode == 0x8:
            return int.from_bytes(data[pos : pos + 2], "big")
        pos += length
    return None


async def test_slow_consumer_is_closed_1013_without_delaying_the_others(server, http, database_url):
    uid = add_user(database_url, "ann")
    token = await login(http, server.base, "ann")
    assert server.pgbell_app[keys.SETTINGS].send_queue_size == 8
    stats = server.pgbell_app[keys.HUB].stats
    healthy, stalled = await healthy_and_stalled(server, token)

    body = "x" * 32_000
    received, slowest = 0, 0.0
    try:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            # one notification per commit, each awaited on the healthy socket:
            # a hub that waited on the stalled socket would stall this loop
            for i in range(400):
                started = time.monotonic()
                await conn.execute(
                    "INSERT INTO pgbell.notifications (user_id, kind, title, body)"
                    " VALUES (%s, 'bulk', %s, %s)",
                    (uid, f"Bulk {i}", body),
                )
                got = await frame(healthy, "notification", f"#{i} on the healthy socket", 3)
                assert got["notification"]["title"] == f"Bulk {i}"
                received += 1
                slowest = max(slowest, time.monotonic() - started)
                if stats.slow_consumers_closed and received >= 20:
                    break
        assert stats.slow_consumers_closed == 1, (
            f"the stalled socket was not closed after {received} frames of 32 kB"
        )
        assert await stalled.close_code() == 1013
    finally:
        stalled.close()
    await assert_silent(healthy, "the healthy socket, after the stalled one was closed")
    assert slowest < 3
    await healthy.close()


async def test_socket_closed_1013_resumes_without_losing_anything(server, http, database_url):
    """Frames of one wake-up are queued at once: a transaction that notifies
    one user past the queue closes the socket, and the resume brings it all."""
    uid = add_user(database_url, "ann")
    token = await login(http, server.base, "ann")
    insert_deal(database_url, "Seed", uid)
    ws = await open_socket(server.ws_base, token)
    seed = (await snapshot(ws, "before the burst"))["notifications"][0]["id"]
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO deals (title, amount, owner_id)"
            " SELECT 'Burst ' || i, i, %s FROM generate_series(1, 20) AS i",
            (uid,),
        )
    assert await closed(ws, "after 20 frames for a queue of 8") == (1013, "slow_consumer")
    ws = await open_socket(server.ws_base, token, since=seed)
    missed = (await snapshot(ws, f"on resume since={seed}"))["missed"]
    assert [n["title"] for n in missed] == [f"New deal: Burst {i}" for i in range(1, 21)]
    await ws.close()
