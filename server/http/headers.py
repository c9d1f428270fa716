"""Security headers on every answer pgbell sends.

Every answer: `X-Content-Type-Options: nosniff` (a JSON body or a script
is never taken for something else) and `Referrer-Policy: same-origin`: the
sites a notification links to never learn which pgbell page the user came
from, while same-origin requests keep their `Origin` header (under
`no-referrer` browsers send `Origin: null` even on a same-origin POST,
which proxies with CSRF checks refuse).

HTML pages (the demo client at `/` and at `/deals/{id}` for a browser) also
get a Content-Security-Policy and `X-Frame-Options: DENY`, so no other site
can frame them (clickjacking), and an injected script, style, plugin or
`<base>` has nowhere to load from. The page loads only its own module
script and stylesheet and talks to its own origin, over HTTP and over the
WebSocket (connect-src names ws:// and wss:// of the page's host, since
'self' covers them only in CSP level 3 browsers).

Scripts, JSON and the rest get no CSP: it governs documents only, and
pgbell-client.js is loaded by other sites' pages, which their own policy
governs. CORS headers (http/cors.py) are left alone.

A hook on `on_response_prepare` rather than a middleware: a FileResponse
(`/`, `/static/`) learns its Content-Type only when it is prepared, after
every middleware has returned, and the hook also sees answers raised past
the middlewares.
"""

from __future__ import annotations

import re

from aiohttp import web

NOSNIFF = "nosniff"
REFERRER_POLICY = "same-origin"
_PAGE_POLICY = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)
# A Host header goes into the policy only if it is a plain host[:port]: a
# client may send any Host, and `;` or a space would add directives.
_HOST = re.compile(r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def page_policy(host: str | None) -> str:
    """The Content-Security-Policy of an HTML page served for `host`."""
    connect = "connect-src 'self'"
    if host and len(host) <= 255 and _HOST.fullmatch(host):
        connect += f" ws://{host} wss://{host}"
    return "; ".join((*_PAGE_POLICY, connect))


def _is_html(response: web.StreamResponse) -> bool:
    # The header itself, not response.content_type: that property keeps its
    # parse on the response, three attributes more, and a WebSocketResponse
    # (kept for its socket's whole life) then outgrows CPython's compact
    # instance layout: a dict of its own, 1.5 KB more per socket.
    mime = response.headers.get("Content-Type", "").partition(";")[0]
    return mime.strip().lower() == "text/html"


async def _secure(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", NOSNIFF)
    response.headers.setdefault("Referrer-Policy", REFERRER_POLICY)
    if _is_html(response):
        response.headers["Content-Security-Policy"] = page_policy(request.host)
        response.headers["X-Frame-Options"] = "DENY"


def install_security_headers(app: web.Application) -> None:
    """Set the headers on every answer of `app`, just before it is sent."""
    app.on_response_prepare.append(_secure)
