"""An independent client for the contract tests: raw aiohttp for REST, the
`websockets` library for /ws, pyjwt for hand-made tokens. It knows only
PROTOCOL.md, nothing of pgbell's own code, so it checks the wire as any
other client would see it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import jwt
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support import DEFAULT_WAIT, JWT_SECRET


def mint(user_id: int | str, expires_in: float = 60, secret: str = JWT_SECRET, **claims) -> str:
    """An HS256 token as pgbell issues it: `sub` is the user id, `exp` the expiry."""
    payload = {"sub": str(user_id), "exp": int(time.time() + expires_in), **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def rest(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> tuple[int, Any]:
    """One REST call; every answer of the contract is JSON, errors included."""
    headers = dict(headers or {})
    if token is not None:
        headers.update(bearer(token))
    async with http.request(method, url, headers=headers, **kwargs) as r:
        text = await r.text()
        assert r.content_type == "application/json", (
            f"{method} {url}: {r.status} answered {r.content_type}, not JSON: {text[:200]!r}"
        )
        return r.status, json.loads(text)


def assert_error(
    status: int, body: Any, want: int | tuple[int, ...], code: str, field: str | None = None
) -> None:
    """The one error shape, with the wanted status and code; `field` must be named."""
    wanted = (want,) if isinstance(want, int) else want
    assert status in wanted, f"status {status}, wanted {wanted}: {body}"
    assert isinstance(body, dict) and set(body) == {"error"}, f"not the error shape: {body}"
    error = body["error"]
    assert set(error) == {"code", "message"}, f"error has {sorted(error)}: {body}"
    assert error["code"] == code, f"code {error['code']!r}, wanted {code!r}: {body}"
    assert isinstance(error["message"], str) and error["message"], body
    if field is not None:
        assert field in error["message"], f"message does not name {field!r}: {error['message']!r}"


async def open_socket(
    ws_base: str,
    token: str | None = None,
    *,
    header: bool = False,
    since: int | str | None = None,
    **kwargs: Any,
) -> ClientConnection:
    """Connect to /ws with the token in the query (browsers) or a header."""
    query = []
    if token is not None and not header:
        query.append(f"token={token}")
    if since is not None:
        query.append(f"since={since}")
    url = f"{ws_base}/ws" + ("?" + "&".join(query) if query else "")
    extra = bearer(token) if header and token is not None else None
    kwargs.setdefault("ping_interval", None)
    kwargs.setdefault("open_timeout", DEFAULT_WAIT)
    return await connect(url, additional_headers=extra, **kwargs)


async def frame(
    ws: ClientConnection, want: str, where: str, timeout: float = DEFAULT_WAIT
) -> dict[str, Any]:
    """The next frame of type `want`, skipping others; fails naming what did not arrive."""
    deadline = time.monotonic() + timeout
    seen: list[Any] = []
    while True:
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            raw = await asyncio.wait_for(ws.recv(), left)
        except TimeoutError:
            raise AssertionError(
                f"no {want!r} frame {where} within {timeout} s (saw {seen})"
            ) from None
        except ConnectionClosed as e:
            raise AssertionError(f"waiting for {want!r} {where}: socket closed ({e})") from None
        assert isinstance(raw, str), f"{where}: a binary frame from the server: {raw[:80]!r}"
        got = json.loads(raw)
        if got.get("type") == want:
            return got
        seen.append(got.get("type"))


async def snapshot(ws: ClientConnection, where: str) -> dict[str, Any]:
    """The first frame after connecting must be the snapshot."""
    try:
        raw = await asyncio.wait_for(ws.recv(), DEFAULT_WAIT)
    except TimeoutError:
        raise AssertionError(f"no snapshot {where} within {DEFAULT_WAIT} s") from None
    first = json.loads(raw)
    assert first.get("type") == "snapshot", f"first frame {where} is not a snapshot: {first}"
    return first


async def assert_silent(ws: ClientConnection, where: str) -> None:
    """Frames to one socket keep their order: a pong that comes back before
    anything else proves nothing was queued for it before the ping."""
    await ws.send(json.dumps({"type": "ping"}))
    try:
        raw = await asyncio.wait_for(ws.recv(), DEFAULT_WAIT)
    except TimeoutError:
        raise AssertionError(f"{where}: no pong within {DEFAULT_WAIT} s") from None
    got = json.loads(raw)
    assert got == {"type": "pong"}, f"{where}: got {got} where nothing was expected"


async def closed(ws: ClientConnection, where: str, timeout: float = DEFAULT_WAIT) -> tuple:
    """Read until the server closes; returns (code, reason) of its close frame."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except ConnectionClosed:
        pass
    except TimeoutError:
        raise AssertionError(f"{where}: the server did not close within {timeout} s") from None
    assert ws.close_code is not None, f"{where}: connection lost without a close frame"
    return ws.close_code, ws.close_reason


def _allow_connections(pg_url: str, name: str, allow: bool) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(name), sql.Literal(allow)
            )
        )
        if not allow:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )


@asynccontextmanager
async def database_outage(pg_url: str, database_url: str) -> AsyncIterator[None]:
    """While inside, the test's database refuses connections and every
    session it had is cut, as in an outage; afterwards it accepts again."""
    name = conninfo_to_dict(database_url)["dbname"]
    await asyncio.to_thread(_allow_connections, pg_url, name, False)
    try:
        yield
    finally:
        await asyncio.to_thread(_allow_connections, pg_url, name, True)
