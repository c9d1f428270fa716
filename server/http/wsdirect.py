"""Writing prepared WebSocket frames straight to an aiohttp transport.

A server's frames are not masked, so without compression a text frame is
the same bytes on every socket: it is framed once (RFC 6455, section 5.2)
and the bytes kept on the hub's Outgoing for the user's next socket. Each
write puts whole frames (all a socket has for the loop's turn, joined) in
the transport in one synchronous call, as aiohttp's own writer does for an
uncompressed frame; the pings, pongs and
close frames it writes are whole frames too, so neither can split the
other. Nothing is written once the socket is closing.
"""

from __future__ import annotations

import struct

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from pgbell.bus.hub import Outgoing

_FIN_TEXT = 0x81
_LEN1 = struct.Struct("!BB").pack
_LEN2 = struct.Struct("!BBH").pack
_LEN3 = struct.Struct("!BBQ").pack


def text_frame(text: str) -> bytes:
    """One unmasked, uncompressed, final text frame carrying `text`."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        return _LEN1(_FIN_TEXT, n) + payload
    if n < 65536:
        return _LEN2(_FIN_TEXT, 126, n) + payload
    return _LEN3(_FIN_TEXT, 127, n) + payload


class DirectSocket:
    """The hub's Direct for one prepared WebSocketResponse that does not
    compress (ws.compress is falsy): the hub calls it, not aiohttp."""

    __slots__ = ("_ws", "_transport", "_protocol", "_stream")

    def __init__(
        self, ws: web.WebSocketResponse, request: web.Request, stream: AbstractStreamWriter
    ) -> None:
        assert not ws.compress, "a compressing socket frames each message itself"
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("the client has gone")
        self._ws = ws
        self._transport = transport
        self._protocol = request.protocol
        self._stream = stream

    def writable(self) -> bool:
        return not self._protocol.writing_paused

    def buffered(self) -> int:
        return self._transport.get_write_buffer_size()

    def write(self, frames: list[Outgoing]) -> None:
        if self._ws.closed or self._transport.is_closing():
            raise ConnectionResetError("the socket is closing")
        parts = []
        for frame in frames:
            data = frame.wire
            if data is None:
                data = frame.wire = text_frame(frame.text)
            parts.append(data)
        # one send for the loop's turn, not one per frame
        self._transport.write(parts[0] if len(parts) == 1 else b"".join(parts))

    async def drained(self) -> None:
        if self._ws.closed or self._transport.is_closing():
            raise ConnectionResetError("the socket is closing")
        await self._stream.drain()
