"""CORS for the REST API, for pages served from another origin than pgbell.

Off by default (same origin only). PGBELL_CORS_ORIGINS lists the origins
allowed to call the API from a browser (exact `scheme://host[:port]`
matches, comma-separated, or `*` for any). Tokens travel in the Authorization header, never
in cookies, so no credentials mode is needed. /ws is not subject to CORS:
a browser page on any origin can open it, and it is the token, not an
ambient cookie, that authenticates it. Still, once origins are listed,
/ws also refuses a browser handshake from any other origin (403): a page
that should not talk to pgbell gets no socket, token or not. Pages served
by pgbell itself (same host) and clients that send no Origin (servers,
scripts) are always let through.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from pgbell.http import keys

ALLOW_METHODS = "GET, POST, PUT, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, X-Request-Id"
EXPOSE_HEADERS = "X-Request-Id, Retry-After"
PREFLIGHT_MAX_AGE = "600"


def _add_vary(response: web.StreamResponse, value: str) -> None:
    vary = response.headers.get("Vary")
    if not vary:
        response.headers["Vary"] = value
    elif value.lower() not in {v.strip().lower() for v in vary.split(",")}:
        response.headers["Vary"] = f"{vary}, {value}"


def websocket_origin_allowed(request: web.Request) -> bool:
    allowed = request.app[keys.SETTINGS].cors_origins
    origin = request.headers.get("Origin")
    if not allowed or origin is None or "*" in allowed or origin in allowed:
        return True
    return urlsplit(origin).netloc == request.host


@web.middleware
async def cors_middleware(request: web.Request, handler):
    allowed = request.app[keys.SETTINGS].cors_origins
    origin = request.headers.get("Origin")
    if not allowed or origin is None or request.path == "/ws":
        return await handler(request)
    permitted = origin in allowed or "*" in allowed
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        # A preflight: answered here, whatever the route.
        response = web.Response(status=204)
        if permitted:
            response.headers.update(
                {
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": ALLOW_METHODS,
                    "Access-Control-Allow-Headers": ALLOW_HEADERS,
                    "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
                }
            )
        _add_vary(response, "Origin")
        return response
    response = await handler(request)
    if permitted and not response.prepared:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    if not response.prepared:
        _add_vary(response, "Origin")
    return response
