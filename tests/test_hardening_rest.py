"""Hostile input over HTTP against a real server: bodies nested past the
parser's depth get a 400, no spelling of a token in a query string reaches
the log, pgbell's pages cannot be framed, and /metrics is closed when the
server is bound beyond loopback without a metrics token."""

from __future__ import annotations

import asyncio
import logging
import re
import traceback

import pytest
from websockets.asyncio.client import connect
from yarl import URL

from pgbell.http import keys
from pgbell.resources import client_dir
from tests import test_shutdown
from tests.contract_client import assert_error, rest, snapshot
from tests.support import DEFAULT_WAIT, add_user, insert_deal, login, wait_until

# `pgbell serve` in its own process, with JSON logs on its standard error.
served = test_shutdown.served

DEPTH = 5000
DEEP_BODIES = {
    "array": "[" * DEPTH + "]" * DEPTH,
    "object": '{"a":' * DEPTH + "1" + "}" * DEPTH,
    "inside a field": '{"title": ' + "[" * DEPTH + "]" * DEPTH + ', "amount": 1}',
}
JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("body", DEEP_BODIES.values(), ids=DEEP_BODIES.keys())
@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/deals"), ("POST", "/auth/login"), ("PUT", "/preferences")]
)
async def test_deeply_nested_body_is_a_400(server, http, database_url, method, path, body):
    add_user(database_url, "ann")
    token = await login(http, server.base, "ann")
    status, answer = await rest(
        http, method, server.base + path, token=token, data=body.encode(), headers=JSON
    )
    assert_error(status, answer, 400, "invalid_request", "body")


# Spellings of the `token` key that a server decoding the query accepts
# (percent-encoded letters) or that a client may use; none may be logged.
TOKEN_KEYS = ["%74oken", "t%6Fken", "tok%65n", "TOKEN", "access_token", "%74%6f%6b%65%6e"]


async def test_no_spelling_of_a_token_in_a_query_reaches_the_log(served, http, database_url):
    add_user(database_url, "ann")
    token = await login(http, served.base, "ann")
    # websockets sends the request target as written: the key stays encoded
    async with connect(
        f"{served.ws_base}/ws?%74oken={token}", ping_interval=None, open_timeout=DEFAULT_WAIT
    ) as ws:
        await snapshot(ws, "for a socket authenticated by ?%74oken=")
    for key in TOKEN_KEYS:
        # encoded=True: aiohttp sends the query exactly as written
        url = URL(f"{served.base}/notifications?{key}={token}&limit=5", encoded=True)
        async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200, await r.text()

    def logged() -> bool:
        paths = [e.get("path", "") for e in served.log_lines()]
        return any(p.startswith("/ws") for p in paths) and (
            sum(p.startswith("/notifications") for p in paths) == len(TOKEN_KEYS)
        )

    await wait_until(logged, "the access-log lines of the socket and the REST calls")
    assert await served.stop() == 0, served.stderr.read_text()[-2000:]
    text = served.stderr.read_text()
    for part in token.split("."):
        assert part not in text, f"a part of the token is in the server's log: {text[-3000:]}"
    paths = [e["path"] for e in served.log_lines() if "path" in e]
    assert "/ws?token=[redacted]" in paths, paths
    # the harmless parameters stay readable
    assert any(p.endswith("&limit=5") for p in paths if p.startswith("/notifications")), paths


FRAMING = ("frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'")


def _csp(headers) -> dict[str, str]:
    policy = headers.get("Content-Security-Policy", "")
    return {d.split()[0]: d for d in (p.strip() for p in policy.split(";")) if d}


async def test_pages_cannot_be_framed_and_nothing_is_sniffed(server, http, database_url):
    owner = add_user(database_url, "ann")
    deal_id = await asyncio.to_thread(insert_deal, database_url, "Framed", owner)
    html = {"Accept": "text/html,application/xhtml+xml"}
    pages = [
        (f"{server.base}/", {}),
        (f"{server.base}/deals/{deal_id}", html),  # the page behind an action_url
    ]
    for url, headers in pages:
        async with http.get(url, headers=headers) as r:
            assert r.status == 200 and r.content_type == "text/html", url
            assert r.headers["X-Content-Type-Options"] == "nosniff", url
            assert r.headers["Referrer-Policy"] == "same-origin", url
            assert r.headers["X-Frame-Options"] == "DENY", url
            csp = _csp(r.headers)
            assert csp["default-src"] == "default-src 'self'", csp
            for directive in FRAMING:
                assert directive in csp.values(), f"{url}: {directive} missing from {csp}"
            connect_src = csp["connect-src"].split()
            host = URL(server.base).authority
            assert {"'self'", f"ws://{host}", f"wss://{host}"} <= set(connect_src), connect_src
            assert "'unsafe-inline'" not in r.headers["Content-Security-Policy"]

    for url, headers in [
        (f"{server.base}/static/app.js", {}),
        (f"{server.base}/healthz", {}),
        (f"{server.base}/notifications", {}),  # a 401 in the error shape
    ]:
        async with http.get(url, headers=headers) as r:
            assert r.headers["X-Content-Type-Options"] == "nosniff", url
            assert r.headers["Referrer-Policy"] == "same-origin", url
            # not a document: nothing to frame, and the script is loaded by
            # other sites' pages (examples/django), which a CSP here cannot touch
            assert "Content-Security-Policy" not in r.headers, url


def test_the_demo_page_needs_nothing_the_policy_forbids():
    """No inline script, style or event handler: the CSP allows none."""
    page = (client_dir() / "index.html").read_text()
    scripts = re.findall(r"<script\b[^>]*>", page)
    assert scripts and all("src=" in s for s in scripts), scripts
    assert "<style" not in page and " style=" not in page
    assert not re.search(r"\son[a-z]+=", page), "an inline event handler"
    assert "javascript:" not in page


async def test_a_weird_host_header_cannot_write_the_policy(server, http):
    async with http.get(f"{server.base}/", headers={"Host": "evil.example; script-src *"}) as r:
        policy = r.headers["Content-Security-Policy"]
    assert "evil" not in policy and "script-src *" not in policy, policy
    assert "frame-ancestors 'none'" in policy


async def test_metrics_beyond_loopback_need_a_token(start_server, http, caplog):
    # the app believes it is bound to every address; the test server listens on loopback
    with caplog.at_level(logging.WARNING):
        exposed = await start_server(PGBELL_HOST="0.0.0.0")
    assert exposed.pgbell_app[keys.SETTINGS].host == "0.0.0.0"
    status, body = await rest(http, "GET", f"{exposed.base}/metrics")
    assert_error(status, body, 403, "forbidden", "PGBELL_METRICS_TOKEN")
    assert any(
        r.levelno == logging.WARNING and "PGBELL_METRICS_TOKEN" in r.getMessage()
        for r in caplog.records
    ), "no warning at start about /metrics on 0.0.0.0 without a token"

    guarded = await start_server(PGBELL_HOST="0.0.0.0", PGBELL_METRICS_TOKEN="scrape-secret")
    status, body = await rest(http, "GET", f"{guarded.base}/metrics")
    assert_error(status, body, 401, "unauthorized")
    async with http.get(
        f"{guarded.base}/metrics", headers={"Authorization": "Bearer scrape-secret"}
    ) as r:
        assert r.status == 200 and "pgbell_websocket_connections" in await r.text()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
async def test_metrics_on_loopback_stay_open(start_server, http, host):
    srv = await start_server(PGBELL_HOST=host)
    async with http.get(f"{srv.base}/metrics") as r:
        assert r.status == 200, await r.text()
        assert "pgbell_websocket_connections" in await r.text()


@pytest.mark.parametrize(
    "raw",
    [b"GARBAGE\r\n\r\n", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: \x00\r\n\r\n"],
    ids=["no-request-line", "nul-in-header"],
)
async def test_malformed_http_is_logged_without_crashing_the_access_logger(
    settings, aiohttp_server, caplog, raw
):
    """aiohttp answers a malformed request 400 before routing it; the access
    logger then asked the request for its app, and crashed."""
    from pgbell.http import logs
    from pgbell.http.app import create_app

    srv = await aiohttp_server(create_app(settings), access_log_class=logs.AccessLogger)
    with caplog.at_level(logging.INFO):
        reader, writer = await asyncio.open_connection(srv.host, srv.port)
        writer.write(raw)
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        await writer.wait_closed()
        await wait_until(
            lambda: any(r.getMessage() == "request" for r in caplog.records),
            "the access log line of the malformed request",
        )
    assert re.match(rb"HTTP/1\.[01] 400 ", status), status
    # aiohttp itself logs the malformed request; what must not appear is a
    # failure inside pgbell's own code (the access logger) while handling it
    crashes = [
        r
        for r in caplog.records
        if r.getMessage().startswith("Unhandled exception")
        or (r.exc_info and "pgbell" in "".join(traceback.format_exception(*r.exc_info)))
    ]
    assert crashes == [], [r.getMessage() for r in crashes]
