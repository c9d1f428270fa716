"""CORS: off by default; with PGBELL_CORS_ORIGINS, a page on a listed origin
can log in and call the API from a browser, and no other origin can."""

from __future__ import annotations

import aiohttp
import pytest

from pgbell.config import ConfigError, Settings
from tests.support import add_user, login, next_frame, server_env

APP_ORIGIN = "https://app.example.com"


async def test_without_configuration_no_cors_headers(server, http):
    headers = {"Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST"}
    async with http.options(f"{server.base}/auth/login", headers=headers) as r:
        assert "Access-Control-Allow-Origin" not in r.headers
    async with http.get(f"{server.base}/healthz", headers={"Origin": APP_ORIGIN}) as r:
        assert "Access-Control-Allow-Origin" not in r.headers


async def test_listed_origin_is_allowed_others_are_not(database_url, start_server, http):
    add_user(database_url, "crossing", password="pw")
    base = (await start_server(PGBELL_CORS_ORIGINS=f"{APP_ORIGIN}, http://localhost:3000")).base

    preflight = {
        "Origin": APP_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    async with http.options(f"{base}/auth/login", headers=preflight) as r:
        assert r.status == 204
        assert r.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
        assert "POST" in r.headers["Access-Control-Allow-Methods"]
        assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
        assert "Origin" in r.headers["Vary"]

    async with http.post(
        f"{base}/auth/login",
        json={"username": "crossing", "password": "pw"},
        headers={"Origin": APP_ORIGIN},
    ) as r:
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
        assert "X-Request-Id" in r.headers["Access-Control-Expose-Headers"]
        token = (await r.json())["token"]

    # errors carry the header too, or the page could not read them
    async with http.get(f"{base}/notifications", headers={"Origin": APP_ORIGIN}) as r:
        assert r.status == 401
        assert r.headers["Access-Control-Allow-Origin"] == APP_ORIGIN

    evil = {"Origin": "https://evil.example.net"}
    async with http.options(
        f"{base}/auth/login", headers={**evil, "Access-Control-Request-Method": "POST"}
    ) as r:
        assert "Access-Control-Allow-Origin" not in r.headers
    async with http.get(
        f"{base}/notifications", headers={**evil, "Authorization": f"Bearer {token}"}
    ) as r:
        assert r.status == 200  # CORS is the browser's to enforce...
        assert "Access-Control-Allow-Origin" not in r.headers  # ...and it will


async def test_websocket_refuses_unlisted_browser_origins_once_origins_are_listed(
    database_url, start_server, http
):
    add_user(database_url, "socketeer", password="pw")
    base = (await start_server(PGBELL_CORS_ORIGINS=APP_ORIGIN)).base
    ws_url = "ws" + base[len("http") :] + "/ws?token=" + await login(http, base, "socketeer")

    for origin in (APP_ORIGIN, base, None):  # listed, pgbell's own page, a script
        headers = {"Origin": origin} if origin else {}
        async with http.ws_connect(ws_url, headers=headers) as ws:
            frame = await next_frame(ws, "snapshot", where=f"with Origin {origin}")
            assert frame["unread_count"] == 0

    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(ws_url, headers={"Origin": "https://evil.example.net"})
    assert refused.value.status == 403


async def test_websocket_accepts_any_origin_when_none_are_listed(server, http, database_url):
    add_user(database_url, "anywhere", password="pw")
    token = await login(http, server.base, "anywhere")
    async with http.ws_connect(
        f"{server.ws_base}/ws?token={token}", headers={"Origin": "https://elsewhere.example"}
    ) as ws:
        await next_frame(ws, "snapshot", where="from an unlisted origin with no list set")


@pytest.mark.parametrize(
    "bad", ["app.example.com", "https://app.example.com/", "ftp://x.org", "https://"]
)
def test_malformed_origins_stop_the_server_naming_the_variable(bad):
    with pytest.raises(ConfigError, match="PGBELL_CORS_ORIGINS"):
        Settings.from_env(server_env("postgresql://localhost/x", PGBELL_CORS_ORIGINS=bad))
