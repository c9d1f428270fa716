"""The WebSocket, fuzzed frame by frame against a real server.

hypothesis sends one frame at a time, then a `ping`: random JSON (objects,
arrays, deep nesting, huge numbers, NaN, strings with NUL and lone
surrogates, unknown types, `read` frames with bad ids), text that is not
JSON or not UTF-8, binary frames, frames split into fragments, compressed
or not, of sizes up to and past PGBELL_WS_MAX_FRAME_BYTES. After each one
the socket must answer exactly as docs/protocol.md says, in order: an
`error` frame for what it cannot use, a `pong` for a ping, nothing for a
valid `read`, and then the `pong`; or close: 1009 for a frame over the
limit, 1007 for text that is not UTF-8 (as RFC 6455 requires). The server
must log no unhandled error.

The sockets are real (the `websockets` client, driven from a worker thread
while the server answers on the test's event loop) and stay open from one
frame to the next until the server closes one. Bounded and repeatable: a
fixed number of examples, derandomized.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from contextlib import ExitStack
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from pgbell.config import Settings
from pgbell.http import logs
from pgbell.http.app import create_app
from tests.support import DEFAULT_WAIT, add_user, login, server_env

# PGBELL_WS_MAX_FRAME_BYTES: half the default, so frames past it stay cheap,
# yet room for nesting far past the parser's recursion limit (while hypothesis
# runs it raises the process's limit, the server's included, by ~2000 frames)
LIMIT = 32768
EXAMPLES = 400
MAX_ID = 2**63 - 1
FUZZ_ENV = {
    "PGBELL_WS_MAX_FRAME_BYTES": str(LIMIT),
    # compressed frames are fuzzed too: the server must accept the offer
    "PGBELL_WS_COMPRESSION": "on",
    # valid `read` frames by the hundred must not meet the socket's rate limit
    "PGBELL_WS_READS_PER_SECOND": "100000",
}

PONG = "pong"
ERROR = "error:invalid_request"


@pytest.fixture
async def fuzz_server(database_url, aiohttp_server):
    """A real server on a real port, configured as `pgbell serve` runs it."""
    app = create_app(Settings.from_env(server_env(database_url, **FUZZ_ENV)))
    srv = await aiohttp_server(app, access_log_class=logs.AccessLogger)
    srv.ws_base = str(srv.make_url("")).rstrip("/").replace("http", "ws", 1)
    srv.base = str(srv.make_url("")).rstrip("/")
    return srv


def crashes(records: list[logging.LogRecord]) -> list[str]:
    """The server's unhandled errors among `records`, with their tracebacks."""
    fmt = logging.Formatter("%(name)s %(levelname)s: %(message)s")
    return [
        fmt.format(r)
        for r in records
        # websockets is the client here: its complaints are the test's own
        if r.levelno >= logging.ERROR and not r.name.startswith("websockets")
    ]


# ---- what the server must answer -------------------------------------------

Outcome = tuple[str, Any]  # ("frames", [...]) or ("closed", code)


def _frames(*answers: str) -> Outcome:
    return ("frames", [*answers, PONG])


def _ids_verdict(ids: Any) -> list[Outcome]:
    """A `read` takes a list of 1 to 1000 notification ids and answers nothing
    (ids that are not the caller's are ignored); anything that is not such a
    list is an error. Integers that can be no notification's id (0, -1,
    2**63) and integral floats (1.0) may be either, ignored or refused."""
    if not isinstance(ids, list) or not 1 <= len(ids) <= 1000:
        return [_frames(ERROR)]
    if all(type(i) is int and 0 < i <= MAX_ID for i in ids):
        return [_frames()]
    if all(
        type(i) is int or (type(i) is float and math.isfinite(i) and i.is_integer()) for i in ids
    ):
        return [_frames(), _frames(ERROR)]
    return [_frames(ERROR)]


def _text_verdict(payload: bytes) -> list[Outcome]:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return [("closed", 1007)]  # RFC 6455: the connection fails, 1007
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        return [_frames(ERROR)]
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        return [_frames(ERROR)]
    if frame["type"] == "ping":
        return [_frames(PONG)]
    if frame["type"] == "read":
        return _ids_verdict(frame.get("ids"))
    return [_frames(ERROR)]


def expected(payload: bytes, is_text: bool) -> list[Outcome]:
    """Every outcome docs/protocol.md allows for this frame."""
    if len(payload) > LIMIT:
        return [("closed", 1009)]
    # a frame of exactly the limit is read, compressed or not (pgbell.http.ws
    # evens out aiohttp's off-by-one for plain frames)
    return _text_verdict(payload) if is_text else [_frames(ERROR)]


# ---- frames ----------------------------------------------------------------

NASTY_TEXT = ["", "\x00", "a\x00b", "\ud800", "\udfff", "x\ud83d", "\u202e", "𝕏𝕏", "é"]
NASTY_NUMBERS = [
    0,
    -1,
    1,
    MAX_ID,
    MAX_ID + 1,
    -(2**63),
    10**400,
    1.0,
    1.5,
    1e308,
    float("nan"),
    float("inf"),
    float("-inf"),
    True,
    False,
]
TYPES = ["ping", "read", "pong", "snapshot", "notification", "error", "PING", " ping", "ping\x00"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.sampled_from(NASTY_NUMBERS)
    | st.text(st.characters(exclude_categories=()), max_size=30)
    | st.sampled_from(NASTY_TEXT)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(["type", "ids", "data"]) | st.text(max_size=8), inner)
    ),
    max_leaves=25,
)
ids = st.one_of(
    json_values,
    st.lists(st.integers(), min_size=1, max_size=8),
    st.lists(st.sampled_from(NASTY_NUMBERS) | st.integers(1, 10**6), min_size=1, max_size=8),
    st.sampled_from([0, 1, 999, 1000, 1001]).map(lambda n: list(range(1, n + 1))),
)
structured = st.builds(
    lambda kind, extra, with_ids, the_ids: {
        **extra,
        "type": kind,
        **({"ids": the_ids} if with_ids else {}),
    },
    st.sampled_from(TYPES) | st.text(st.characters(exclude_categories=()), max_size=12),
    st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    st.booleans(),
    ids,
)


def _encode(value: Any, ascii_only: bool) -> bytes:
    """JSON text of `value`; without the ASCII escapes a lone surrogate
    becomes bytes that are not UTF-8."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def _nested(depth: int, opener: str) -> bytes:
    closer = {"[": "]", '{"a":': "}"}[opener]
    inner = "" if opener == "[" else "1"
    return (opener * depth + inner + closer * depth).encode()


def _sized(size: int, kind: str, fill: str) -> bytes:
    """A JSON frame of type `kind` of exactly `size` bytes (or its smallest
    form when that is larger), padded with `fill` characters."""
    head, tail = f'{{"type":"{kind}","pad":"'.encode(), b'"}'
    room = max(0, size - len(head) - len(tail))
    wide = len(fill.encode())
    return head + (fill * (room // wide)).encode() + b"x" * (room % wide) + tail


reads = st.builds(
    lambda the_ids: {"type": "read", "ids": the_ids},
    st.lists(st.integers(1, MAX_ID), min_size=1, max_size=20) | ids,
)
text_payloads = st.one_of(
    st.builds(_encode, structured, st.booleans()),
    st.builds(_encode, reads, st.booleans()),
    st.builds(_encode, json_values, st.booleans()),
    st.builds(_nested, st.integers(1, LIMIT // 2), st.sampled_from(["[", '{"a":'])),
    st.text(st.characters(exclude_categories=()), max_size=40).map(
        lambda t: t.encode("utf-8", "surrogatepass")
    ),
    st.binary(min_size=1, max_size=40),  # mostly not UTF-8
    st.builds(
        _sized,
        st.sampled_from([LIMIT - 1, LIMIT, LIMIT + 1]) | st.integers(0, 2 * LIMIT),
        st.sampled_from(["ping", "nope"]),
        st.sampled_from(["x", "é", "𝕏"]),
    ),
)
binary_payloads = st.binary(max_size=64) | st.sampled_from([LIMIT - 1, LIMIT, LIMIT + 1]).map(
    lambda n: b"\x00" * n
)
frames = st.one_of(
    st.tuples(text_payloads, st.just(True)),
    st.tuples(binary_payloads, st.just(False)),
)


def _split(payload: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(payload) + 1) for c in cuts})
    edges = [0, *points, len(payload)]
    return [payload[a:b] for a, b in zip(edges, edges[1:], strict=False)]


# ---- the sockets -----------------------------------------------------------


class Sockets:
    """One open socket per compression setting, reopened after a close."""

    def __init__(self, ws_base: str, token: str) -> None:
        self.url = f"{ws_base}/ws"
        self.token = token
        self.open: dict[bool, tuple[ExitStack, ClientConnection]] = {}

    def get(self, compress: bool) -> ClientConnection:
        if compress not in self.open:
            stack = ExitStack()
            conn = stack.enter_context(
                connect(
                    self.url,
                    additional_headers={"Authorization": f"Bearer {self.token}"},
                    compression="deflate" if compress else None,
                    proxy=None,
                    open_timeout=DEFAULT_WAIT,
                    close_timeout=DEFAULT_WAIT,
                    ping_interval=None,
                )
            )
            self.open[compress] = stack, conn
            first = json.loads(conn.recv(timeout=DEFAULT_WAIT))
            assert first["type"] == "snapshot", first
        return self.open[compress][1]

    def drop(self, compress: bool) -> None:
        stack, _ = self.open.pop(compress, (None, None))
        if stack is not None:
            stack.close()

    def close(self) -> None:
        for compress in list(self.open):
            self.drop(compress)


def _describe(message: str | bytes) -> str:
    if isinstance(message, bytes):
        return f"binary {message[:40]!r}"
    frame = json.loads(message)
    if frame.get("type") != "error":
        return frame.get("type", repr(frame))
    error = frame.get("error") or {}
    assert isinstance(error.get("message"), str), f"error frame without a message: {frame}"
    return f"error:{error.get('code')}"


def observe(conn: ClientConnection, allowed: list[Outcome]) -> Outcome:
    """Sends a ping after the fuzzed frame and reads the answers up to its
    pong, or how the socket closed.

    When the frame may close the socket (over the limit, not UTF-8), the
    ping waits for a first answer: after a protocol error aiohttp closes
    without reading what the client sent meanwhile, and the kernel's reset
    can then reach the client before the close frame does."""
    pongs = 2 if _frames(PONG) in allowed else 1
    seen: list[str] = []
    pinged = False
    try:
        if all(kind != "closed" for kind, _ in allowed):
            conn.send('{"type": "ping"}')
            pinged = True
        while seen.count(PONG) < pongs and len(seen) <= pongs + 2:
            try:
                seen.append(_describe(conn.recv(timeout=DEFAULT_WAIT)))
            except TimeoutError:
                raise AssertionError(
                    f"no answer within {DEFAULT_WAIT} s after the frame (saw {seen})"
                ) from None
            if not pinged:
                conn.send('{"type": "ping"}')
                pinged = True
    except ConnectionClosed as e:
        return ("closed", e.rcvd.code if e.rcvd else f"no close frame (saw {seen})")
    return ("frames", seen)


async def test_every_frame_is_answered_as_documented(fuzz_server, database_url, caplog):
    """After any frame the socket answers in order (error, pong or nothing,
    then the pong of the next ping) or closes with the documented code."""
    await asyncio.to_thread(add_user, database_url, "fuzzer")
    async with aiohttp.ClientSession() as http:
        token = await login(http, fuzz_server.base, "fuzzer")
    sockets = Sockets(fuzz_server.ws_base, token)

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(frame=frames, compress=st.booleans(), cuts=st.lists(st.integers(0, 2**16), max_size=3))
    # boundaries a random draw may miss: the size limit each way, nesting
    # past the parser's recursion limit, text that is not UTF-8, 1001 ids
    @example(frame=(_sized(LIMIT - 1, "ping", "x"), True), compress=False, cuts=[])
    @example(frame=(_sized(LIMIT, "ping", "x"), True), compress=True, cuts=[])
    @example(frame=(_sized(LIMIT + 1, "ping", "x"), True), compress=False, cuts=[])
    @example(frame=(_sized(LIMIT + 1, "ping", "x"), True), compress=True, cuts=[100])
    @example(frame=(b"\x00" * (LIMIT + 1), False), compress=False, cuts=[])
    @example(frame=(b'{"type": "ping", "x": "\xed\xa0\x80"}', True), compress=False, cuts=[])
    @example(frame=(b'{"type": "\\ud800\\u0000"}', True), compress=False, cuts=[])
    @example(
        frame=(_encode({"type": "read", "ids": list(range(1001))}, True), True),
        compress=False,
        cuts=[],
    )
    @example(frame=(_nested(10_000, "["), True), compress=False, cuts=[])
    @example(frame=(_nested(5_000, '{"a":'), True), compress=True, cuts=[])
    def one(frame: tuple[bytes, bool], compress: bool, cuts: list[int]) -> None:
        payload, is_text = frame
        allowed = expected(payload, is_text)
        seen = len(caplog.records)
        conn = sockets.get(compress)
        sent = f"{'text' if is_text else 'binary'} {payload[:80]!r} ({len(payload)} bytes)"
        closes = [outcome for outcome in allowed if outcome[0] == "closed"]
        try:
            parts = _split(payload, cuts)
            try:
                conn.send(parts if len(parts) > 1 else payload, text=is_text)
                got = observe(conn, allowed)
            except ConnectionClosed as e:
                # The server closed before the last fragment was out: the
                # client's failed write tears the connection down, and the close
                # frame may go unread. A close is what such a frame must get.
                got = ("closed", e.rcvd.code if e.rcvd else "while the client was sending")
                if e.rcvd is None and closes:
                    got = closes[0]
        except AssertionError as e:
            sockets.drop(compress)  # a socket in an unknown state is not reused
            raise AssertionError(
                "\n".join([f"{sent}: {e}", *crashes(caplog.records[seen:])])
            ) from None
        except BaseException:
            sockets.drop(compress)
            raise
        if got[0] == "closed":
            sockets.drop(compress)
        event(f"{got[0]} {got[1]}")  # --hypothesis-show-statistics tallies them
        found = crashes(caplog.records[seen:])
        assert got in allowed and not found, "\n".join(
            [f"{sent}: got {got}, allowed {allowed}", *found]
        )

    try:
        # in a thread: the server answers on this event loop meanwhile
        await asyncio.to_thread(one)
    finally:
        await asyncio.to_thread(sockets.close)
    assert not crashes(caplog.records), "\n".join(crashes(caplog.records))
