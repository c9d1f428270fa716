"""What an open socket keeps on the server while it is held: the socket's
life must not hold on to what only its start needed, and what is kept lean
(pgbell.http.ws.Socket) still works, the heartbeat included
(docs/benchmarks.md, "Fan-out: 10,000 sockets")."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import os
import struct
import weakref

from pgbell.http import keys
from tests.contract_client import frame, mint, open_socket, snapshot
from tests.support import DEFAULT_WAIT, add_user, insert_deal, wait_until

TEXT, PING = 0x1, 0x9


class _Frame(dict):
    """A snapshot frame that can be watched through a weak reference."""


async def test_an_open_socket_lets_its_snapshot_go_once_sent(server, database_url):
    batcher = server.pgbell_app[keys.SNAPSHOTS]
    answered: list[weakref.ref] = []
    read = batcher.get

    async def get(user_id: str, since: int | None) -> dict:
        got = _Frame(await read(user_id, since))
        answered.append(weakref.ref(got))
        return got

    batcher.get = get
    uid = add_user(database_url, "ann")
    insert_deal(database_url, "Acme", uid)
    sockets = []
    for since in (None, 0):  # a first connect, and a resume with `missed`
        ws = await open_socket(server.ws_base, mint(uid), since=since)
        snap = await snapshot(ws, f"with since={since}")
        assert len(snap["notifications"]) == 1
        # a ping answered: the server is past the snapshot, reading the socket
        await ws.send(json.dumps({"type": "ping"}))
        await frame(ws, "pong", f"with since={since}")
        sockets.append(ws)
    gc.collect()
    assert len(answered) == 2
    assert [ref() is None for ref in answered] == [True, True], "an open socket keeps its snapshot"
    for ws in sockets:
        await ws.close()


class RawClient:
    """A WebSocket client over raw TCP that sees the server's pings and
    chooses whether to answer them."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, host: str, port: int, token: str) -> RawClient:
        reader, writer = await asyncio.open_connection(host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /ws?token={token} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        async with asyncio.timeout(DEFAULT_WAIT):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def next_frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the server's next frame (never masked)."""
        async with asyncio.timeout(DEFAULT_WAIT):
            first, length = await self.reader.readexactly(2)
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            return first & 0x0F, await self.reader.readexactly(length)

    def pong(self, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(bytes([0x8A, 0x80 | len(payload)]) + mask + masked)

    def close(self) -> None:
        self.writer.close()


async def test_the_heartbeat_keeps_a_socket_that_answers_and_drops_one_that_does_not(
    start_server, database_url
):
    srv = await start_server(PGBELL_WS_HEARTBEAT="1")
    hub = srv.pgbell_app[keys.HUB]
    client = await RawClient.connect(srv.host, srv.port, mint(add_user(database_url, "ann")))
    try:
        assert (await client.next_frame())[0] == TEXT  # the snapshot
        for answered in range(3):
            opcode, payload = await client.next_frame()
            assert opcode == PING, f"after {answered} pings answered: opcode {opcode}"
            if answered < 2:
                client.pong(payload)
        # the third ping is not answered: the server lets the socket go
        await wait_until(lambda: hub.socket_count() == 0, "a socket that stopped answering dropped")
    finally:
        client.close()
