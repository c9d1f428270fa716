"""Login and token checks, over REST and WebSocket."""

from __future__ import annotations

import time

import aiohttp
import jwt
import pytest

from pgbell.tokens import issue_token
from tests.support import JWT_SECRET, add_user, login


async def test_login_returns_a_bearer_token(server, http, database_url):
    uid = add_user(database_url, "alice", ("manager",))
    async with http.post(
        f"{server.base}/auth/login", json={"username": "alice", "password": "pw"}
    ) as r:
        assert r.status == 200
        body = await r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["user"] == {"id": uid, "username": "alice", "roles": ["manager"]}
    claims = jwt.decode(body["token"], JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == str(uid) and claims["exp"] > time.time()


@pytest.mark.parametrize("username", ["alice", "nobody"])
async def test_wrong_password_and_unknown_user_get_the_same_401(
    server, http, database_url, username
):
    add_user(database_url, "alice")
    async with http.post(
        f"{server.base}/auth/login", json={"username": username, "password": "nope"}
    ) as r:
        assert r.status == 401
        assert await r.json() == {
            "error": {"code": "invalid_credentials", "message": "wrong username or password"}
        }


def _expired(uid: int) -> str:
    return jwt.encode(
        {"sub": str(uid), "exp": int(time.time()) - 10}, JWT_SECRET, algorithm="HS256"
    )


def _alg_none(uid: int) -> str:
    return jwt.encode({"sub": str(uid), "exp": int(time.time()) + 60}, None, algorithm="none")


@pytest.mark.parametrize(
    ("make_token", "code"),
    [
        (lambda uid: "garbage", "unauthorized"),
        (lambda uid: issue_token("another-secret-" + "y" * 32, 60, str(uid)), "unauthorized"),
        (_alg_none, "unauthorized"),
        (_expired, "token_expired"),
    ],
    ids=["garbage", "bad-signature", "alg-none", "expired"],
)
async def test_bad_tokens_close_the_socket_with_4401(server, http, database_url, make_token, code):
    uid = add_user(database_url, "alice")
    ws = await http.ws_connect(f"{server.ws_base}/ws?token={make_token(uid)}")
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.CLOSE, f"expected a close, got {msg}"
    assert ws.close_code == 4401
    assert msg.extra == code

    async with http.get(
        f"{server.base}/notifications", headers={"Authorization": f"Bearer {make_token(uid)}"}
    ) as r:
        assert r.status == 401
        assert (await r.json())["error"]["code"] == code


async def test_missing_token_is_401_unauthorized(server, http):
    async with http.get(f"{server.base}/notifications/unread-count") as r:
        assert r.status == 401
        assert (await r.json())["error"]["code"] == "unauthorized"


async def test_header_token_works_on_the_socket(server, http, database_url):
    add_user(database_url, "alice")
    token = await login(http, server.base, "alice")
    ws = await http.ws_connect(f"{server.ws_base}/ws", headers={"Authorization": f"Bearer {token}"})
    msg = await ws.receive_json(timeout=5)
    assert msg["type"] == "snapshot"
