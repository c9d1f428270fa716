"""The middlewares of the app, outermost first in create_app: metrics, request
id, CORS (http/cors.py), errors (http/errors.py), login throttle."""

from __future__ import annotations

import json
import math
import time
import uuid

from aiohttp import web

from pgbell.http import keys
from pgbell.http.errors import ApiError, error_response
from pgbell.http.proxies import client_address

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
            stats = request.app[keys.HTTP_STATS]
            stats.requests[(request.method, route, status)] += 1
            stats.duration.observe(time.perf_counter() - started)


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
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None  # the handler answers the bad body itself
    name = body.get("username") if isinstance(body, dict) else None
    return name.casefold()[:150] if isinstance(name, str) else None


@web.middleware
async def login_throttle_middleware(request: web.Request, handler):
    """Runs inside the error middleware: failures arrive as ApiError."""
    if request.method != "POST" or request.path != LOGIN_PATH:
        return await handler(request)
    throttle = request.app[keys.LOGIN_THROTTLE]
    username = await _username(request)
    if username is None:
        return await handler(request)
    key = (client_address(request), username)
    wait = throttle.retry_after(key)
    if wait is not None:
        throttle.rejected += 1
        response = error_response(
            429, "rate_limited", "too many failed logins; try again in a few minutes"
        )
        response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return response
    try:
        response = await handler(request)
    except ApiError as e:
        if e.status == 401:
            throttle.failed(key)
        raise
    if response.status == 200:
        throttle.succeeded(key)
    return response
