"""The writers' benchmark's lean WebSocket reader (bench/wsreader.py) and its
recipients (bench/writers_clients.py), against real servers: an aiohttp
WebSocket server that sends every kind of frame, split across TCP writes at
awkward places, behind a TCP relay that records what the client sends; a
scripted server for the recipients' retries and resumes; and pgbell."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
from collections import Counter
from urllib.parse import parse_qs

import psycopg
import pytest
from aiohttp import WSMsgType, web

from bench import wsreader
from bench.writers_clients import ID, Recipient
from tests.support import DEFAULT_WAIT, add_user, insert_deal, login, wait_until

TEXT, BINARY, CONT, PING, PONG, CLOSE = 0x1, 0x2, 0x0, 0x9, 0xA, 0x8


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A server frame (unmasked), its length in the shortest encoding."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + n.to_bytes(2, "big")
    else:
        head += bytes([127]) + n.to_bytes(8, "big")
    return head + payload


def note(nid: int, pad: str = "") -> str:
    """A notification frame's text, spaced as pgbell's JSON is."""
    return f'{{"type":"notification","notification":{{"id" : {nid}, "title" : "{pad}"}}}}'


def client_frames(sent: bytes) -> list[tuple[int, bytes]]:
    """The frames a client sent after its request, each checked to be masked."""
    head, _, rest = sent.partition(b"\r\n\r\n")
    assert b"Sec-WebSocket-Version: 13" in head
    assert b"Sec-WebSocket-Extensions" not in head, "the client offered an extension"
    frames, i = [], 0
    while i < len(rest):
        b0, b1 = rest[i], rest[i + 1]
        assert b0 & 0x80, f"a client frame without FIN: {rest[i : i + 2]!r}"
        assert b1 & 0x80, f"a client frame not masked: {rest[i : i + 2]!r}"
        n = b1 & 0x7F
        assert n < 126, "the client sends control frames only"
        mask = rest[i + 2 : i + 6]
        payload = bytes(c ^ mask[k % 4] for k, c in enumerate(rest[i + 6 : i + 6 + n]))
        frames.append((b0 & 0x0F, payload))
        i += 6 + n
    return frames


@contextlib.asynccontextmanager
async def relay(port: int):
    """A TCP relay to 127.0.0.1:`port`; yields (its port, what the client sent)."""
    sent = bytearray()

    async def pump(reader, writer, record=None):
        try:
            while data := await reader.read(65536):
                if record is not None:
                    record += data
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(client_r, client_w):
        up_r, up_w = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(pump(client_r, up_w, sent), pump(up_r, client_w))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], sent
    finally:
        server.close()
        await server.wait_closed()


async def serve(aiohttp_server, handler) -> str:
    """A real aiohttp server with `handler` at /ws; its ws:// URL."""
    app = web.Application()
    app.router.add_get("/ws", handler)
    srv = await aiohttp_server(app)
    return f"ws://127.0.0.1:{srv.port}/ws"


async def bounded(aw, what: str, timeout: float = DEFAULT_WAIT):
    try:
        return await asyncio.wait_for(aw, timeout)
    except TimeoutError:
        raise AssertionError(f"{what}: nothing within {timeout} s") from None


async def test_frames_of_every_kind_split_anywhere(aiohttp_server):
    reader_ready: asyncio.Future[wsreader.WsReader] = asyncio.get_running_loop().create_future()
    got: list[str] = []  # every text message the client saw, in order
    eacute = "é".encode()
    sent_by_aiohttp = [note(1), note(2, "m" * 300), note(3, "l" * 70_000)]
    # message 4 in three fragments, a ping between them, "é" cut between fragments
    part1 = note(4, "frag é")[:-3].encode() + eacute[:1]
    part2 = eacute[1:] + b"..."
    part3 = b'"}}'
    raw_texts = [
        (part1 + part2 + part3).decode(),
        note(5, "s" * 200),  # a 16-bit length
        note(6, "x" * 70_000),  # a 64-bit length
        note(7, "é"),
    ]
    stream = [
        frame(TEXT, part1, fin=False),
        frame(PING, b"mid"),
        frame(CONT, part2, fin=False),
        frame(CONT, part3),
        frame(TEXT, raw_texts[1].encode()),
        frame(TEXT, raw_texts[2].encode()),
        frame(TEXT, raw_texts[3].encode()),
    ]
    at = [0]
    for f in stream:
        at.append(at[-1] + len(f))
    cuts = [
        1,  # inside the first header
        at[1] + 1,  # inside the ping's header
        at[4] + 3,  # inside a 16-bit length
        at[5] + 6,  # inside a 64-bit length
        at[5] + 40_000,  # inside a long payload
        at[7] - 4,  # inside the "é" of message 7 (its last bytes: é"}})
    ]
    raw = b"".join(stream)
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]

    async def handler(request):
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        reader = await bounded(reader_ready, "the client's reader")
        for text in sent_by_aiohttp:
            await ws.send_str(text)
        await wait_until(lambda: len(got) == 3, "the three frames sent by aiohttp, read")
        await ws.ping(b"are you there")
        msg = await bounded(ws.receive(), "a pong")
        assert (msg.type, msg.data) == (WSMsgType.PONG, b"are you there")
        base = reader.received
        written = 0
        for piece in pieces:
            request.transport.write(piece)
            written += len(piece)
            # the client has this piece alone: the next one is a separate read
            await wait_until(
                lambda n=written: reader.received == base + n, f"the client read {written} bytes"
            )
        msg = await bounded(ws.receive(), "the pong to the ping between fragments")
        assert (msg.type, msg.data) == (WSMsgType.PONG, b"mid")
        await wait_until(lambda: len(got) == 7, "the seven messages, read")
        await ws.close(code=4000, message=b"bye")
        return ws

    url = await serve(aiohttp_server, handler)
    port = int(url.split(":")[2].split("/")[0])
    async with relay(port) as (relay_port, sent):
        reader = await wsreader.connect(f"ws://127.0.0.1:{relay_port}/ws?x=1", DEFAULT_WAIT)
        reader_ready.set_result(reader)
        first = await bounded(reader.first(), "the first message")
        got.append(first)
        reader.start(lambda text: got.extend(text.split("\n")))
        code = await bounded(reader.wait_closed(), "the end of the connection", 20)
        await wait_until(lambda: sent[-8:-6] == b"\x88\x82", "the client's close, relayed")
    assert reader.error is None
    assert code == 4000 and reader.close_code == 4000
    assert got == sent_by_aiohttp + raw_texts
    assert [int(m) for m in ID.findall("\n".join(got))] == [1, 2, 3, 4, 5, 6, 7]
    assert reader.pings == 2
    assert client_frames(bytes(sent)) == [
        (PONG, b"are you there"),
        (PONG, b"mid"),
        (CLOSE, (4000).to_bytes(2, "big")),  # the reply to a close echoes its code
    ]


@pytest.mark.parametrize(
    ("bad", "code", "error"),
    [
        (bytes([0x81, 0x82]) + b"abcd" + b"xy", 1002, "masked"),
        (bytes([0xC1, 0x01]) + b"x", 1002, "RSV"),
        (frame(CONT, b"x"), 1002, "continuation"),
        (frame(PING, b"", fin=False), 1002, "control frame"),
        (frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"), 1002, "inside a fragmented"),
        (frame(BINARY, b"\x00"), 1003, "binary"),
        (frame(TEXT, b"\xff"), 1007, "UTF-8"),
        (frame(TEXT, b"ok") + frame(TEXT, b"\xe9t\xe9"), 1007, "UTF-8"),
    ],
)
async def test_a_server_that_breaks_the_protocol_is_failed(aiohttp_server, bad, code, error):
    closed_with: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def handler(request):
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        request.transport.write(bad)
        msg = await bounded(ws.receive(), "the client's close")
        closed_with.set_result(msg.data if msg.type == WSMsgType.CLOSE else msg.type)
        return ws

    reader = await wsreader.connect(await serve(aiohttp_server, handler), DEFAULT_WAIT)
    first = await bounded(reader.first(), "the first message or the end")
    reader.start(lambda text: None)
    assert await bounded(closed_with, "the server's view of the close") == code
    await bounded(reader.wait_closed(), "the end of the connection")
    assert first in (None, "ok")
    assert reader.error is not None and error in reader.error


async def test_a_refused_or_wrong_upgrade_is_an_error(aiohttp_server):
    async def forbidden(request):
        return web.Response(status=403)

    with pytest.raises(wsreader.HandshakeError, match="403"):
        await wsreader.connect(await serve(aiohttp_server, forbidden), DEFAULT_WAIT)

    answers = {
        "a wrong accept": lambda key: b"AAAA",
        "an extension not offered": lambda key: key + b"\r\nSec-WebSocket-Extensions: x",
    }
    for what, accept in answers.items():

        async def upgrade(reader, writer, accept=accept):
            head = await reader.readuntil(b"\r\n\r\n")
            key = head.split(b"Sec-WebSocket-Key: ")[1].split(b"\r\n")[0]
            good = base64.b64encode(hashlib.sha1(key + wsreader.GUID).digest())
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept(good) + b"\r\n\r\n"
            )
            await reader.read()  # until the client hangs up
            writer.close()

        server = await asyncio.start_server(upgrade, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(wsreader.HandshakeError) as refused:
                await wsreader.connect(f"ws://127.0.0.1:{port}/ws", DEFAULT_WAIT)
            assert ("Accept" if what == "a wrong accept" else "extensions") in str(refused.value)
        finally:
            server.close()
            await server.wait_closed()


async def test_a_recipient_retries_resumes_and_counts(aiohttp_server):
    """1013 before the snapshot: tried again; a server close: resumed with
    ?since= the highest id; a truncated `missed`: resumed from its last row."""
    queries: list[dict] = []

    def snapshot(notifications=(), missed=None, truncated=False) -> str:
        body = {"type": "snapshot", "unread_count": 0, "notifications": list(notifications)}
        if missed is not None:
            body.update(missed=missed, missed_truncated=truncated)
        return json.dumps(body, separators=(",", ":"))  # compact, as pgbell sends it

    async def handler(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        queries.append({k: v[0] for k, v in parse_qs(request.query_string).items()})
        turn = len(queries)
        if turn == 1:
            await ws.close(code=1013)
        elif turn == 2:
            await ws.send_str(snapshot([{"id": 10}]))
            for nid in (11, 12):
                await ws.send_str(note(nid))
            await ws.send_str('{"type":"read","ids":[11],"unread_count":1}')
            await ws.close(code=1013)
        elif turn == 3:
            await ws.send_str(snapshot(missed=[{"id": 14}, {"id": 13}], truncated=True))
            await bounded(ws.receive(), "the client's close after a truncated resume")
        elif turn == 4:
            await ws.send_str(snapshot(missed=[{"id": 15}]))
            for text in (note(15), note(16), '{"type":"notification","notification":{}}'):
                await ws.send_str(text)
            await ws.close(code=4000)
        else:
            await ws.send_str(snapshot(missed=[]))
            await ws.receive()  # held until the client goes
        return ws

    url = await serve(aiohttp_server, handler)
    rec = Recipient("7", "the-token")
    opened = asyncio.get_running_loop().create_future()
    errors: Counter[str] = Counter()
    task = asyncio.create_task(rec.hold(url, opened, errors))
    try:
        assert await bounded(opened, "the recipient's first snapshot") is True, errors
        await wait_until(lambda: len(queries) == 5, "the fifth connection")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert errors == Counter()
    assert [q.get("since") for q in queries] == [None, None, "12", "13", "16"]
    assert all(q["token"] == "the-token" for q in queries)
    # 15 came twice; the notification without an id counts as -1
    assert rec.ids == {11, 12, 13, 14, 15, 16, -1}
    assert rec.frames - len(rec.ids) == 1
    assert rec.closes == Counter({"1013 before the snapshot": 1, "1013": 1, "4000": 1})


async def test_a_recipient_on_pgbell_gets_every_notification(server, http, database_url):
    owner = add_user(database_url, "owner")
    rec = Recipient(str(owner), await login(http, server.base, "owner"))
    stranger = Recipient("0", "not-a-token")
    opened = [asyncio.get_running_loop().create_future() for _ in range(2)]
    errors: Counter[str] = Counter()
    tasks = [
        asyncio.create_task(r.hold(f"{server.ws_base}/ws", f, errors))
        for r, f in zip((rec, stranger), opened, strict=True)
    ]
    try:
        assert await bounded(opened[0], "the owner's snapshot") is True
        assert await bounded(opened[1], "the stranger's refusal") is False
        assert errors == Counter({"closed 4401 before the snapshot": 1})
        for title in ("one", "two", "three"):
            await asyncio.to_thread(insert_deal, database_url, title, owner)
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT id FROM pgbell.notifications WHERE user_id = %s", (str(owner),)
            ).fetchall()
        assert len(rows) == 3
        await wait_until(lambda: rec.ids == {r[0] for r in rows}, "the owner's three ids")
        assert rec.frames == 3 and rec.since == max(r[0] for r in rows)
        assert not rec.closes
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
