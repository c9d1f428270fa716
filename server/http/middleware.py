"""The middlewares of the app, outermost first in create_app: metrics, request
id, CORS (http/cors.py), errors (http/errors.py), login throttle; and the
login's password-check threads, opened and closed with the app."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import AsyncIterator

from aiohttp import web

from pgbell.http import keys, validate
from pgbell.http.errors import ApiError, error_response
from pgbell.http.proxies import client_address
from pgbell.http.throttle import Throttled
from pgbell.passwords import PasswordChecks

LOGIN_PATH = "/auth/login"


@web.middleware
async def http_metrics_middleware(request: web.Request, handler):
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        info = request.match_info.route.resource
        route = info.canonical if info is not None else "unmatched"
        if route != "/ws":  # a socket's lifetime is not a request duration
            elapsed = time.perf_counter() - started
            request.app[keys.HTTP_STATS].record(request.method, route, status, elapsed)


@web.middleware
async def request_id_middleware(request: web.Request, handler):
    rid = request.headers.get("X-Request-Id", "")
    request[keys.REQUEST_ID] = rid if 0 < len(rid) <= 64 and rid.isprintable() else uuid.uuid4().hex
    response = await handler(request)
    if not response.prepared:
        response.headers["X-Request-Id"] = request[keys.REQUEST_ID]
    return response


async def _username(request: web.Request) -> str | None:
    # request.read() raises 413 past the size limit: that propagates, to be
    # answered by the error middleware outside this one.
    raw = await request.read()
    try:
        body = validate.parse_json(raw)
    except ValueError:
        return None  # the handler answers the bad body itself (deep nesting included)
    name = body.get("username") if isinstance(body, dict) else None
    return name.casefold()[:150] if isinstance(name, str) else None


def rate_limited(message: str, retry_after: float) -> web.Response:
    """429 `rate_limited` with a Retry-After of at least one second."""
    response = error_response(429, "rate_limited", message)
    response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return response


@web.middleware
async def login_throttle_middleware(request: web.Request, handler):
    """Applies http/throttle.py to POST /auth/login. Runs inside the error
    middleware: failures arrive as ApiError."""
    if request.method != "POST" or request.path != LOGIN_PATH:
        return await handler(request)
    throttle = request.app[keys.LOGIN_THROTTLE]
    username = await _username(request)
    if username is None:
        return await handler(request)  # no username, no password check: nothing to count
    try:
        # no await between the budget check and the spending: simultaneous
        # guesses cannot all pass the check before any of them is counted
        attempt = throttle.begin(client_address(request), username)
    except Throttled as e:
        return rate_limited("too many failed logins; try again later", e.retry_after)
    try:
        response = await handler(request)
    except ApiError as e:
        if e.status != 401:
            throttle.give_back(attempt)
        raise
    except Exception:
        throttle.give_back(attempt)  # the database, say: no password was checked
        raise
    # (a cancelled handler keeps its failure: its password may have been checked)
    if response.status == 200:
        throttle.succeeded(attempt)
    else:
        throttle.give_back(attempt)
    return response


async def password_checks(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the threads the login handler checks passwords in
    (PGBELL_LOGIN_THREADS, at most PGBELL_LOGIN_MAX_PENDING checks at once)."""
    settings = app[keys.SETTINGS]
    app[keys.PASSWORD_CHECKS] = PasswordChecks(settings.login_threads, settings.login_max_pending)
    yield
    app[keys.PASSWORD_CHECKS].close()
