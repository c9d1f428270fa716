"""GET /ws: the WebSocket protocol of PROTOCOL.md.

Authenticate (a bad token still completes the handshake, then closes with
4401 so a browser can tell it from a network failure), register with the
hub, send the snapshot (with `missed` on a resume, bounded in rows and in
bytes), then let the hub stream live frames (straight to the transport,
through pgbell.http.wsdirect, unless the socket compresses) while this module
answers the client's frames (`read` frames within a per-socket rate).

The handler does the first part, up to the registration, inside the
middlewares; the socket's life (snapshot, then the client's frames) runs
after they returned (Socket.write_eof), so that what a socket keeps for
hours is small: see Socket.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
from aiohttp import WSCloseCode, WSMsgType, web

from pgbell.bus import wire
from pgbell.bus.hub import Subscriber
from pgbell.http import cors, keys, validate
from pgbell.http.auth import OWN_TOKEN_VERSION, bearer, identify
from pgbell.http.errors import DATABASE_UNAVAILABLE, ApiError, database_unavailable
from pgbell.http.wsdirect import DirectSocket
from pgbell.sql import Q
from pgbell.tokens import TokenError

log = logging.getLogger(__name__)

AUTH_CLOSE = 4401
# One more socket than PGBELL_MAX_SOCKETS_PER_USER for one user, per process.
TOO_MANY_CLOSE = 4429
MAX_READ_IDS = 1000
# what ends the read loop (ERROR: e.g. a frame over the size limit, closed with 1009)
_END = frozenset({WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR})


class ReadBudget:
    """A token bucket for one socket's `read` frames: `rate` a second, in
    bursts of twice as many (at least one). Each read costs a database write;
    a client looping on them must not turn one socket into a write storm."""

    __slots__ = ("_rate", "_capacity", "_tokens", "_at")

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._capacity = max(1.0, 2 * rate)
        self._tokens = self._capacity
        self._at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class Socket(web.WebSocketResponse):
    """A WebSocketResponse whose life runs after its handler returned.

    aiohttp awaits write_eof() of the response a handler returns once every
    middleware has returned too. websocket_handler checks the origin,
    completes the handshake, checks the token and the socket limit and
    registers the socket inside the middlewares (their error answers and
    logs apply to that part), then returns with the socket's life in
    `life`; write_eof runs it. A socket held for hours then keeps neither
    the middlewares' suspended frames nor the handler's, with its locals
    (the token's claims among them): about 2 KB of a socket's 19."""

    # Slots, for what would take a WebSocketResponse past 30 attributes, where
    # CPython 3.11 gives an instance a dict of its own (1.5 KB): aiohttp sets
    # 29 at the handshake, and two more at the socket's first heartbeat (the
    # ping's task and the pong's timer, class attributes until then).
    __slots__ = ("life", "_ping_task", "_pong_response_cb")

    def __init__(self, **kwargs: Any) -> None:
        self._ping_task: asyncio.Task[None] | None = None
        self._pong_response_cb: asyncio.TimerHandle | None = None
        super().__init__(**kwargs)
        self.life: Coroutine[Any, Any, None] | None = None

    async def write_eof(self) -> None:  # type: ignore[override]
        life, self.life = self.life, None
        if life is not None:
            await life
        await super().write_eof()

    async def close_with(self, code: int, reason: str) -> None:
        """close() as the hub calls it (a bound method, not a closure per socket)."""
        await self.close(code=code, message=reason.encode())


def _query(request: web.Request) -> dict[str, str]:
    """The first value of each query parameter, as request.query has it
    (yarl documents its parse as parse_qsl's). Not request.query itself: it
    keeps its parse on the request, that is for the socket's whole life."""
    first: dict[str, str] = {}
    for key, value in parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True):
        first.setdefault(key, value)
    return first


def _since(query: dict[str, str]) -> int | None:
    raw = query.get("since")
    if raw is None or raw == "":
        return None
    if not validate.digits(raw) or len(raw) > 18:
        raise ValueError("since: must be a notification id (a non-negative integer)")
    return int(raw)


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    app = request.app
    settings = app[keys.SETTINGS]
    if not cors.websocket_origin_allowed(request):
        # before the handshake: a refused origin is not an auth failure (4401)
        raise ApiError(403, "forbidden", "this origin may not open pgbell's WebSocket")
    ws = Socket(
        heartbeat=settings.ws_heartbeat,
        max_msg_size=_aiohttp_max_msg_size(
            request, settings.ws_max_frame_bytes, settings.ws_compression
        ),
        # aiohttp's default is on; off, an offered permessage-deflate is
        # declined and the socket costs no zlib state (PGBELL_WS_COMPRESSION)
        compress=settings.ws_compression,
    )
    stream = await ws.prepare(request)
    query = _query(request)
    try:
        # browsers cannot set headers on a WebSocket: they use ?token=
        caller = await identify(request, bearer(request) or query.get("token", ""))
    except TokenError as e:
        await ws.close(code=AUTH_CLOSE, message=e.code.encode())
        return ws
    except Exception as e:
        # checking a pgbell-issued token needs the database
        await _close_on_failure(ws, e, "checking the token")
        return ws
    hub = app[keys.HUB]
    if hub.sockets_of(caller.user_id) >= settings.max_sockets_per_user:
        await ws.close(code=TOO_MANY_CLOSE, message=b"too_many_connections")
        return ws
    # A bad since is answered after the snapshot, which is always the first frame.
    since_error = None
    try:
        since = _since(query)
    except ValueError as e:
        since, since_error = None, str(e)

    if request.transport is None:
        return ws  # the client left while its token was checked
    sub = Subscriber(
        caller.user_id,
        ws.send_str,
        ws.close_with,
        settings.send_queue_size,
        hub.stats,
        token_version=caller.claims.get(OWN_TOKEN_VERSION),
        max_bytes=settings.send_buffer_bytes,
        # without compression the hub writes prepared frames to the transport
        direct=None if ws.compress else DirectSocket(ws, request, stream),
    )
    # Register before the snapshot: a row committed after it is queued live,
    # one committed before it is in it, and the writer skips the overlap.
    # No await from the limit's check to here: two sockets cannot both pass it.
    hub.add(sub)
    loop = asyncio.get_running_loop()
    expiry = loop.call_at(loop.time() + max(0.0, caller.expires_at - time.time()), _expire, sub)
    app[keys.SOCKETS].add(ws)
    ws.life = _serve(ws, sub, app, expiry, since, since_error)
    return ws


def _expire(sub: Subscriber) -> None:
    # one function for every socket's expiry timer, not a closure each
    sub.close_now(AUTH_CLOSE, "token_expired")


async def _serve(
    ws: web.WebSocketResponse,
    sub: Subscriber,
    app: web.Application,
    expiry: asyncio.TimerHandle,
    since: int | None,
    since_error: str | None,
) -> None:
    """The socket's life, run by Socket.write_eof once the handler returned:
    the snapshot, then the client's frames until it closes; then it leaves
    the hub. What this frame holds, the socket keeps while it is open."""
    try:
        sub.start(await _send_snapshot(ws, app, sub.user_id, since))
        if since_error is not None:
            sub.offer(_error(since_error))
        budget: ReadBudget | None = None  # on the first frame: most sockets send none
        while True:
            # ws.receive(), not `async for`: one suspended frame less per socket
            msg = await ws.receive()
            if msg.type == WSMsgType.TEXT:
                if budget is None:
                    budget = ReadBudget(app[keys.SETTINGS].ws_reads_per_second)
                answer = await _answer(msg.data, sub.user_id, app, budget)
                if answer is not None:
                    sub.offer(answer)
            elif msg.type == WSMsgType.BINARY:
                sub.offer(_error("frames must be JSON text"))
            elif msg.type in _END:
                break
        if ws.close_code is None:
            await ws.close(code=WSCloseCode.OK)
    except Exception as e:
        await _close_on_failure(ws, e, "serving the socket")
    finally:
        expiry.cancel()
        app[keys.HUB].remove(sub)
        await sub.stop()
        app[keys.SOCKETS].discard(ws)


async def _send_snapshot(
    ws: web.WebSocketResponse, app: web.Application, user_id: str, since: int | None
) -> frozenset[int]:
    """Send the snapshot; returns the ids of the notifications it carried.
    Its own frame, so that the snapshot is let go once sent."""
    # shared with the sockets connecting at the same time (pgbell.http.snapshots)
    snapshot = await app[keys.SNAPSHOTS].get(user_id, since)
    await ws.send_str(wire.dumps(snapshot))
    sent = {n["id"] for n in snapshot["notifications"]} | {
        n["id"] for n in snapshot.get("missed", [])
    }
    return frozenset(sent)


def _aiohttp_max_msg_size(request: web.Request, limit: int, compression: bool) -> int:
    """aiohttp's max_msg_size for PGBELL_WS_MAX_FRAME_BYTES = `limit`. aiohttp
    (3.14) refuses a plain frame of max_msg_size bytes or more, but an
    inflated message only past max_msg_size. So a socket that will not be
    compressed gets one byte more, and a frame of exactly `limit` bytes
    passes either way, as documented."""
    offered = "permessage-deflate" in request.headers.get("Sec-WebSocket-Extensions", "")
    return limit if compression and offered else limit + 1


async def _close_on_failure(ws: web.WebSocketResponse, e: Exception, doing: str) -> None:
    """Once the handshake is done, an HTTP error response can no longer be
    sent: a failure closes the socket with a code the client understands,
    1013 (try again later) while the database is away, 1011 otherwise."""
    if ws.closed or isinstance(e, ConnectionResetError):
        return  # the client has gone: nothing to tell it
    if database_unavailable(e):
        log.warning("database unavailable while %s", doing, extra={"error": repr(e)})
        await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"unavailable")
    else:
        log.exception("socket failed while %s", doing)
        await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"internal_error")


def _error(message: str, code: str = "invalid_request") -> str:
    return wire.dumps({"type": "error", "error": {"code": code, "message": message}})


async def _answer(data: str, user_id: str, app: web.Application, budget: ReadBudget) -> str | None:
    try:
        frame = validate.parse_json(data)
    except validate.NestedTooDeeply:
        return _error("the frame is JSON nested too deeply")
    except ValueError:
        return _error("the frame is not valid JSON")
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        return _error("type: a frame is a JSON object with a string 'type'")
    kind = frame["type"]
    if kind == "ping":
        return wire.dumps({"type": "pong"})
    if kind == "read":
        if not budget.take():
            rate = app[keys.SETTINGS].ws_reads_per_second
            return _error(
                f"too many read frames: at most {rate:g} a second on one socket;"
                " the refused ones changed nothing, send them again later",
                code="rate_limited",
            )
        ids = frame.get("ids")
        if (
            not isinstance(ids, list)
            or not ids
            or len(ids) > MAX_READ_IDS
            or not all(
                isinstance(i, int) and not isinstance(i, bool) and 0 < i < 2**63 for i in ids
            )
        ):
            return _error(f"ids: a list of 1..{MAX_READ_IDS} notification ids")
        # The read frame itself comes back through the database trigger, to
        # every socket of this user, like a read from REST or psql.
        try:
            await app[keys.POOL].execute(Q.mark_many_read, user_id, ids)
        except (asyncpg.PostgresError, *DATABASE_UNAVAILABLE) as e:
            # the database is away: say so and keep the socket, rather than
            # let the handler fail and drop a client that did nothing wrong
            log.warning("read over the socket failed", extra={"error": repr(e)})
            return _error("the database is unreachable; try again", code="unavailable")
        return None
    return _error(f"type: unknown frame type {kind[:40]!r}")
