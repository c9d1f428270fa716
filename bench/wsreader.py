"""A lean WebSocket client that only reads: the recipients' sockets of the
writers' benchmark (bench/writers_clients.py).

Browsers spend their own machines' CPU on reading frames; in the benchmark
the recipients share the server's two cores, so their reader should cost as
little per frame as a faithful client can. This one is an asyncio.Protocol
that does the RFC 6455 handshake itself (and checks the 101 and its
Sec-WebSocket-Accept), offers no extension, and parses the server's frames
out of each chunk the socket gives: every complete text message of a chunk
goes to the sink in one call, decoded (which checks its UTF-8) and joined
with newlines, so that the caller can match all of them with one regex.
Pings are answered with masked pongs as a client must; a close is answered
and its code kept. A server that breaks the protocol (a masked frame, RSV
bits, a fragmented or long control frame, a stray continuation, a binary
message, text that is not UTF-8) fails the connection and leaves `error`.

    reader = await connect("ws://host:port/ws?token=...", timeout)
    first = await reader.first()     # the first text message, or None: closed
    reader.start(sink)               # sink(text) per chunk, from the second on
    code = await reader.wait_closed()
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import Callable
from struct import Struct
from urllib.parse import urlsplit

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HANDSHAKE = 64 * 1024
READ_SIZE = 256 * 1024  # as much as asyncio's own transports read at once
MIN_READ = 64 * 1024
MAX_FRAME = 2**30  # beyond it a length is taken for garbage, not buffered
NO_STATUS = 1005  # a close frame without a code
ABNORMAL = 1006  # the connection ended without a close frame
U16 = Struct("!H").unpack_from
U64 = Struct("!Q").unpack_from
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class HandshakeError(Exception):
    """The server did not upgrade the connection as RFC 6455 says."""


def accept_for(key: bytes) -> bytes:
    """The Sec-WebSocket-Accept a server must answer to `key`."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """A final client frame of at most 125 bytes (control frames), masked."""
    n = len(payload)
    assert n <= 125, "only control frames are sent"
    mask = os.urandom(4)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    body = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")
    return bytes((0x80 | opcode, 0x80 | n)) + mask + body


class WsReader(asyncio.BufferedProtocol):
    """One client socket, from the handshake to the end of the connection."""

    def __init__(self, key: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = loop.create_future()
        self._first: asyncio.Future[None] = loop.create_future()
        self._closed: asyncio.Future[int] = loop.create_future()
        self.upgraded = False
        self.sink: Callable[[str], None] | None = None
        self.waiting: list[bytearray] = []  # complete text messages before start()
        self.frag: list[bytearray] | None = None  # a fragmented message so far
        self.buf = bytearray(READ_SIZE)
        self.view = memoryview(self.buf)
        self.filled = 0  # bytes read and not yet parsed, at the front of `buf`
        self.need = 0  # what `filled` must reach before parsing is worth it
        self.received = 0  # bytes, handshake included
        self.pings = 0
        self.close_code: int | None = None
        self.close_sent = False
        self.done = False  # a close came or was failed: the rest is ignored
        self.error: str | None = None

    # asyncio.BufferedProtocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.done = True
        if self.close_code is None:
            self.close_code = ABNORMAL
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("connection closed during the handshake"))
        self._wake_first()
        if not self._closed.done():
            self._closed.set_result(self.close_code)

    def get_buffer(self, sizehint: int) -> memoryview:
        # the socket is read into this one buffer: a fresh bytes object per
        # read costs more than parsing its frames (256 KiB mapped and unmapped)
        if len(self.buf) - self.filled < MIN_READ:
            self._grow(max(2 * len(self.buf), self.need + MIN_READ))
        return self.view[self.filled :]

    def buffer_updated(self, nbytes: int) -> None:
        self.received += nbytes
        self.filled += nbytes
        if self.done or self.filled < self.need:
            return  # a frame (or a handshake) still incomplete: nothing to parse yet
        data = self.buf
        n = self.filled
        i = need = 0
        if not self.upgraded:
            i = self._handshake(data, n)
            if i < 0:
                return
        texts: list[bytearray] = []
        frag = self.frag
        while n - i >= 2:
            b1 = data[i + 1]
            if b1 < 126:
                start = i + 2
                end = start + b1
            elif b1 == 126:
                if n - i < 4:
                    break
                start = i + 4
                end = start + U16(data, i + 2)[0]
            elif b1 == 127:
                if n - i < 10:
                    break
                start = i + 10
                end = start + U64(data, i + 2)[0]
                if end - start > MAX_FRAME:
                    self._fail(1009, "a frame over 1 GiB")
                    break
            else:
                self._fail(1002, "the server masked a frame")
                break
            if end > n:
                need = end - i
                break
            if data[i] == 0x81 and frag is None:  # a whole text message: nearly all of them
                texts.append(data[start:end])
            elif not self._frame(data[i], data[start:end], texts):
                break
            else:
                frag = self.frag
            i = end
        # the start of the next frame, if any, moves to the front; then parsing
        # waits for its whole length, or (its header is cut) for any next byte
        if i:
            data[: n - i] = data[i:n]  # the same length: no resize, which a view forbids
            self.filled = n - i
        self.need = need or self.filled + 1
        if texts:
            self._deliver(texts)
        if self.done and self.transport is not None:
            self.transport.close()

    def _grow(self, size: int) -> None:
        # a new buffer, never a resize: the transport may still hold a view of this one
        buf = bytearray(size)
        buf[: self.filled] = self.buf[: self.filled]
        self.buf, self.view = buf, memoryview(buf)

    # frames

    def _frame(self, b0: int, payload: bytearray, texts: list[bytearray]) -> bool:
        """Any frame but a whole text message; False once the connection ends."""
        opcode = b0 & 0x0F
        fin = b0 & 0x80
        if b0 & 0x70:
            return self._fail(1002, "RSV bits set, and no extension was agreed")
        if opcode >= CLOSE:
            if not fin or len(payload) > 125:
                return self._fail(1002, "a fragmented or long control frame")
            if opcode == PING:
                self.pings += 1
                self._send(PONG, bytes(payload))
            elif opcode == CLOSE:
                return self._closing(payload)
            elif opcode != PONG:
                return self._fail(1002, f"unknown opcode {opcode}")
            return True
        if opcode == CONT:
            if self.frag is None:
                return self._fail(1002, "a continuation frame without a message")
            self.frag.append(payload)
            if fin:
                texts.append(bytearray().join(self.frag))
                self.frag = None
            return True
        if self.frag is not None:
            return self._fail(1002, "a new message inside a fragmented one")
        if opcode == TEXT:
            if fin:
                texts.append(payload)
            else:
                self.frag = [payload]
            return True
        if opcode == BINARY:
            return self._fail(1003, "a binary message")
        return self._fail(1002, f"unknown opcode {opcode}")

    def _deliver(self, texts: list[bytearray]) -> None:
        if self.sink is None:
            self.waiting += texts
            if not self._first.done():
                self._first.set_result(None)
            return
        try:
            # newlines between them: a message cut inside a UTF-8 sequence stays invalid
            text = b"\n".join(texts).decode()
        except UnicodeDecodeError:
            self._fail(1007, "a text message that is not UTF-8")
            if self.transport is not None:
                self.transport.close()
            return
        self.sink(text)

    def _closing(self, payload: bytearray) -> bool:
        if len(payload) == 1:
            return self._fail(1002, "a close frame of one byte")
        self.close_code = U16(payload)[0] if payload else NO_STATUS
        if not self.close_sent:
            self._send(CLOSE, bytes(payload[:2]))  # the reply echoes the code
        self.done = True
        self._wake_first()
        return False

    def _fail(self, code: int, why: str) -> bool:
        self.error = why
        if not self.close_sent:
            self._send(CLOSE, code.to_bytes(2, "big"))
        self.done = True
        self._wake_first()
        return False

    def _wake_first(self) -> None:
        if not self._first.done():
            self._first.set_result(None)

    def _send(self, opcode: int, payload: bytes) -> None:
        if opcode == CLOSE:
            self.close_sent = True
        assert self.transport is not None
        self.transport.write(masked_frame(opcode, payload))

    # the handshake

    def _handshake(self, data: bytearray, n: int) -> int:
        """Where the frames start, once the server's 101 is all here and
        checked; -1 before (or when it is refused)."""
        end = data.find(b"\r\n\r\n", 0, n)
        if end < 0:
            if n > MAX_HANDSHAKE:
                return self._refuse("a handshake answer over 64 KiB")
            self.need = n + 1
            return -1
        head = data[:end].decode("latin-1").split("\r\n")
        status = head[0].split(" ", 2)
        if len(status) < 2 or status[0] != "HTTP/1.1" or status[1] != "101":
            return self._refuse(f"the server answered {head[0][:80]!r}, not 101")
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        connection = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        if headers.get("upgrade", "").lower() != "websocket" or "upgrade" not in connection:
            return self._refuse("a 101 without Upgrade: websocket and Connection: upgrade")
        if headers.get("sec-websocket-accept", "").encode() != accept_for(self.key):
            return self._refuse("a wrong Sec-WebSocket-Accept")
        for unoffered in ("sec-websocket-extensions", "sec-websocket-protocol"):
            if unoffered in headers:
                return self._refuse(f"{unoffered} that was not offered")
        self.upgraded = True
        self.opened.set_result(None)
        return end + 4

    def _refuse(self, why: str) -> int:
        self.done = True
        self.opened.set_exception(HandshakeError(why))
        assert self.transport is not None
        self.transport.close()
        return -1

    # what the caller uses

    async def first(self) -> str | None:
        """The first text message, or None when the connection ended before
        one came (`close_code` and `error` say why)."""
        await asyncio.shield(self._first)
        if not self.waiting:
            return None
        try:
            return self.waiting[0].decode()
        except UnicodeDecodeError:
            self._fail(1007, "a text message that is not UTF-8")
            assert self.transport is not None
            self.transport.close()
            return None

    def start(self, sink: Callable[[str], None]) -> None:
        """From now on `sink` gets the complete text messages of each chunk,
        joined by newlines; the ones after the first that came meanwhile
        first, in one call."""
        rest, self.waiting = self.waiting[1:], []
        self.sink = sink
        if rest:
            self._deliver(rest)

    async def wait_closed(self) -> int:
        """The close code once the connection has ended (1006: no close frame)."""
        return await asyncio.shield(self._closed)

    async def close(self, timeout: float = 5.0, code: int = 1000) -> int:
        """Close as a client does: send a close, wait for the server's (bounded)."""
        if not self.close_sent and not self.done and self.transport is not None:
            self._send(CLOSE, code.to_bytes(2, "big"))
        try:
            return await asyncio.wait_for(asyncio.shield(self._closed), timeout)
        except TimeoutError:
            self.abort()
            return await asyncio.shield(self._closed)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def connect(url: str, timeout: float) -> WsReader:
    """A WebSocket to `url` (ws:// or wss://), once the server's 101 is checked."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError("a ws:// or wss:// URL with a host")
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    key = base64.b64encode(os.urandom(16))
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {parts.netloc.rpartition('@')[2]}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    loop = asyncio.get_running_loop()
    reader = WsReader(key)
    async with asyncio.timeout(timeout):
        await loop.create_connection(
            lambda: reader, parts.hostname, port, ssl=True if parts.scheme == "wss" else None
        )
        assert reader.transport is not None
        reader.transport.write(request.encode())
        try:
            await reader.opened
        except BaseException:
            reader.opened.cancel()  # what the end of the connection finds is nobody's
            reader.abort()
            raise
    return reader
