"""pgbell's own users (standalone mode): `pgbell user add`, `password` and
`delete` as an operator runs them, passwords from standard input, and the
tokens of a changed password or a deleted user refused from then on."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import aiohttp
import psycopg

from tests.support import insert_deal, login, next_frame


def pgbell(url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_URL=url)
    return subprocess.run(
        [sys.executable, "-m", "pgbell", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _refused(http: aiohttp.ClientSession, server, token: str, why: str) -> None:
    async with http.get(
        f"{server.base}/notifications", headers={"Authorization": f"Bearer {token}"}
    ) as r:
        body = await r.json()
        assert r.status == 401, f"{why}: REST answered {r.status} {body}"
    assert body["error"]["code"] == "unauthorized", body
    ws = await http.ws_connect(f"{server.ws_base}/ws?token={token}")
    msg = await ws.receive(timeout=5)
    assert (msg.type, ws.close_code, msg.extra) == (
        aiohttp.WSMsgType.CLOSE,
        4401,
        "unauthorized",
    ), f"{why}: the socket got {msg}"


async def _closed_4401(ws: aiohttp.ClientWebSocketResponse, what: str) -> None:
    """The server closes `ws` with 4401 within the bounded wait."""
    try:
        async with asyncio.timeout(5):
            while (msg := await ws.receive()).type == aiohttp.WSMsgType.TEXT:
                pass
    except TimeoutError:
        raise AssertionError(f"{what} was not closed within 5 s") from None
    assert (msg.type, msg.data, msg.extra) == (
        aiohttp.WSMsgType.CLOSE,
        4401,
        "unauthorized",
    ), f"{what}: {msg}"


async def test_user_add_reads_the_password_from_standard_input(server, http, database_url):
    out = await asyncio.to_thread(
        pgbell, database_url, "user", "add", "ann", "--role", "manager", stdin="s3cret pass\n"
    )
    assert out.returncode == 0, out.stderr
    uid = int(out.stdout.strip())
    async with http.post(
        f"{server.base}/auth/login", json={"username": "ann", "password": "s3cret pass"}
    ) as r:
        body = await r.json()
    assert r.status == 200, body
    assert body["user"] == {"id": uid, "username": "ann", "roles": ["manager"]}


def test_user_add_refuses_an_empty_password_and_a_taken_name(database_url):
    out = pgbell(database_url, "user", "add", "ann", stdin="")
    assert out.returncode != 0 and "a password is 1 to 1024 characters" in out.stderr
    assert pgbell(database_url, "user", "add", "ann", "--password", "pw").returncode == 0
    out = pgbell(database_url, "user", "add", "ann", stdin="pw\n")
    assert out.returncode != 0 and "already exists" in out.stderr


async def test_a_new_password_refuses_every_older_token(server, http, database_url):
    assert (
        await asyncio.to_thread(pgbell, database_url, "user", "add", "ann", stdin="one\n")
    ).returncode == 0
    old = await login(http, server.base, "ann", "one")
    ws = await http.ws_connect(f"{server.ws_base}/ws?token={old}")
    await next_frame(ws, "snapshot", where="before the password changes")

    out = await asyncio.to_thread(pgbell, database_url, "user", "password", "ann", stdin="two\n")
    assert out.returncode == 0, out.stderr
    # the socket open on the old token is closed too, not only new requests refused
    await _closed_4401(ws, "the socket opened before the password change")
    await _refused(http, server, old, "a token from before the password change")
    async with http.post(
        f"{server.base}/auth/login", json={"username": "ann", "password": "one"}
    ) as r:
        assert r.status == 401, "the old password still logs in"
    new = await login(http, server.base, "ann", "two")
    async with http.get(
        f"{server.base}/notifications", headers={"Authorization": f"Bearer {new}"}
    ) as r:
        assert r.status == 200
    # a socket on the new token lives through the next revocation of another user
    fresh = await http.ws_connect(f"{server.ws_base}/ws?token={new}")
    await next_frame(fresh, "snapshot", where="on the new token")
    other = await asyncio.to_thread(pgbell, database_url, "user", "add", "bob", stdin="pw\n")
    assert other.returncode == 0
    assert (await asyncio.to_thread(pgbell, database_url, "user", "delete", "bob")).returncode == 0
    await fresh.send_json({"type": "ping"})
    assert (await next_frame(fresh, "pong", where="after another user's deletion"))[
        "type"
    ] == "pong"


async def test_a_deleted_user_loses_its_tokens_and_its_notifications(server, http, database_url):
    out = await asyncio.to_thread(pgbell, database_url, "user", "add", "ann", stdin="pw\n")
    uid = int(out.stdout)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pgbell.notify('deal_created', user_ids => %s, data => '{\"title\": \"A\"}')",
            ([str(uid)],),
        )
    token = await login(http, server.base, "ann")
    ws = await http.ws_connect(f"{server.ws_base}/ws?token={token}")
    await next_frame(ws, "snapshot", where="before the user is deleted")

    out = await asyncio.to_thread(pgbell, database_url, "user", "delete", "ann")
    assert out.returncode == 0, out.stderr
    await _closed_4401(ws, "the deleted user's open socket")
    await _refused(http, server, token, "a deleted user's token")
    with psycopg.connect(database_url) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pgbell.notifications WHERE user_id = %s", (str(uid),)
        ).fetchone()[0]
    assert left == 0


def test_delete_says_which_table_still_needs_the_user(database_url):
    uid = int(pgbell(database_url, "user", "add", "ann", stdin="pw\n").stdout)
    insert_deal(database_url, "Acme", uid)
    out = pgbell(database_url, "user", "delete", "ann")
    assert out.returncode != 0
    assert "still referenced from deals (deals_owner_id_fkey)" in out.stderr, out.stderr


def test_password_and_delete_name_an_unknown_user(database_url):
    for args, stdin in ((("password", "nobody"), "pw\n"), (("delete", "nobody"), None)):
        out = pgbell(database_url, "user", *args, stdin=stdin)
        assert out.returncode != 0 and "no user named 'nobody'" in out.stderr, out.stderr
