"""Read state changes through one path, whoever writes it."""

from __future__ import annotations

import asyncio

import psycopg

from tests.support import add_user, insert_deal, login, next_frame


async def _tabs(http, server, name, n=2):
    token = await login(http, server.base, name)
    tabs = []
    for _ in range(n):
        ws = await http.ws_connect(f"{server.ws_base}/ws?token={token}")
        await next_frame(ws, "snapshot", where=f"for {name}")
        tabs.append(ws)
    return token, tabs


def _update(url: str, statement: str, params: tuple) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement, params)


async def test_psql_update_of_read_at_reaches_both_sockets(server, http, database_url):
    uid = add_user(database_url, "ann")
    first = insert_deal(database_url, "One", uid)
    insert_deal(database_url, "Two", uid)
    _, tabs = await _tabs(http, server, "ann")

    await asyncio.to_thread(
        _update,
        database_url,
        "UPDATE pgbell.notifications SET read_at = now() WHERE user_id = %s AND data->>'deal_id' = %s",
        (str(uid), str(first)),
    )
    for i, ws in enumerate(tabs):
        frame = await next_frame(ws, "read", where=f"on tab {i} after a psql UPDATE")
        assert frame["unread_count"] == 1
        assert len(frame["ids"]) == 1


async def test_archiving_clears_the_list_and_the_count(server, http, database_url):
    uid = add_user(database_url, "ann")
    insert_deal(database_url, "One", uid)
    insert_deal(database_url, "Two", uid)
    token, [ws] = await _tabs(http, server, "ann", 1)
    auth = {"Authorization": f"Bearer {token}"}
    async with http.get(f"{server.base}/notifications", headers=auth) as r:
        items = (await r.json())["items"]
    async with http.post(
        f"{server.base}/notifications/{items[0]['id']}/archive", headers=auth
    ) as r:
        assert r.status == 200
        assert (await r.json())["unread_count"] == 1
    frame = await next_frame(ws, "archived", where="after archiving")
    assert frame == {"type": "archived", "ids": [items[0]["id"]], "unread_count": 1}
    async with http.get(f"{server.base}/notifications", headers=auth) as r:
        body = await r.json()
    assert [n["id"] for n in body["items"]] == [items[1]["id"]] and body["unread_count"] == 1

    # another user's id is not found, and archive-read takes only read ones
    add_user(database_url, "bob")
    other = await login(http, server.base, "bob")
    url = f"{server.base}/notifications/{items[1]['id']}/archive"
    async with http.post(url, headers={"Authorization": f"Bearer {other}"}) as r:
        assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
    async with http.post(f"{server.base}/notifications/archive-read", headers=auth) as r:
        assert await r.json() == {"archived": 0, "unread_count": 1}
