"""End to end: SQL writers and REST writers reach the right WebSockets."""

from __future__ import annotations

import asyncio

import psycopg

from tests.support import (
    add_user,
    assert_no_frame_before_pong,
    insert_deal,
    login,
    next_frame,
)


async def _socket(http, server, name):
    token = await login(http, server.base, name)
    ws = await http.ws_connect(f"{server.ws_base}/ws?token={token}")
    snapshot = await next_frame(ws, "snapshot", where=f"for {name} on connect")
    return ws, snapshot


async def test_psql_deal_reaches_owner_and_manager_not_a_third_user(server, http, database_url):
    owner = add_user(database_url, "owner")
    add_user(database_url, "boss", ("manager",))
    add_user(database_url, "bystander")
    owner_ws, snap = await _socket(http, server, "owner")
    manager_ws, _ = await _socket(http, server, "boss")
    third_ws, _ = await _socket(http, server, "bystander")
    assert snap["unread_count"] == 0 and snap["notifications"] == []

    deal_id = await asyncio.to_thread(insert_deal, database_url, "Acme", owner, 12000)

    for ws, who in ((owner_ws, "owner"), (manager_ws, "manager")):
        frame = await next_frame(ws, "notification", where=f"for the {who}")
        note = frame["notification"]
        assert note["kind"] == "deal_created"
        assert note["title"] == "New deal: Acme"
        assert note["body"] == "Acme, 12,000.00"
        assert note["priority"] == "normal"
        assert note["action_url"] == f"/deals/{deal_id}"
        assert note["data"]["deal_id"] == deal_id
        assert note["read_at"] is None
        assert frame["unread_count"] == 1
    await assert_no_frame_before_pong(third_ws, "a user who is neither owner nor manager")


async def test_every_tab_of_a_user_gets_the_frame(server, http, database_url):
    owner = add_user(database_url, "owner")
    tabs = [(await _socket(http, server, "owner"))[0] for _ in range(3)]
    await asyncio.to_thread(insert_deal, database_url, "Tabs", owner)
    for i, ws in enumerate(tabs):
        frame = await next_frame(ws, "notification", where=f"on tab {i}")
        assert frame["notification"]["title"] == "New deal: Tabs"


async def test_rolled_back_insert_notifies_nobody(server, http, database_url):
    owner = add_user(database_url, "owner")
    ws, _ = await _socket(http, server, "owner")

    def rolled_back() -> None:
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "INSERT INTO deals (title, amount, owner_id) VALUES ('Ghost', 1, %s)", (owner,)
            )
            conn.rollback()

    await asyncio.to_thread(rolled_back)
    await asyncio.to_thread(insert_deal, database_url, "Real", owner)
    # Frames reach a socket in commit order of their polls: if the rolled-back
    # deal had been delivered, it would come first.
    frame = await next_frame(ws, "notification", where="after a rollback and a commit")
    assert frame["notification"]["title"] == "New deal: Real"
    assert frame["unread_count"] == 1


async def test_rest_deal_and_payment_notify_through_the_same_triggers(server, http, database_url):
    add_user(database_url, "owner")
    add_user(database_url, "boss", ("manager",))
    token = await login(http, server.base, "owner")
    ws, _ = await _socket(http, server, "owner")
    boss_ws, _ = await _socket(http, server, "boss")
    auth = {"Authorization": f"Bearer {token}"}

    async with http.post(
        f"{server.base}/deals", json={"title": "Rest", "amount": 10.5}, headers=auth
    ) as r:
        assert r.status == 201, await r.text()
        deal = (await r.json())["deal"]
    assert deal["amount"] == 10.5 and deal["created_by"] == deal["owner_id"]
    frame = await next_frame(ws, "notification", where="for the REST deal")
    assert frame["notification"]["data"]["deal_id"] == deal["id"]
    await next_frame(boss_ws, "notification", where="for the manager")

    url = f"{server.base}/deals/{deal['id']}/payments"
    async with http.post(url, json={"amount": 99.99}, headers=auth) as r:
        assert r.status == 201, await r.text()
        payment = (await r.json())["payment"]
    frame = await next_frame(ws, "notification", where="for the payment")
    note = frame["notification"]
    assert note["kind"] == "payment_received" and note["priority"] == "high"
    assert note["data"]["payment_id"] == payment["id"] and note["data"]["deal_id"] == deal["id"]
    assert note["action_url"] == f"/deals/{deal['id']}"
    assert frame["unread_count"] == 2
    # the payment is the owner's business alone
    await assert_no_frame_before_pong(boss_ws, "the manager, for a payment")


async def test_snapshot_carries_unread_newest_first(server, http, database_url):
    owner = add_user(database_url, "owner")
    for title in ("One", "Two", "Three"):
        insert_deal(database_url, title, owner)
    _, snap = await _socket(http, server, "owner")
    assert snap["unread_count"] == 3
    assert [n["title"] for n in snap["notifications"]] == [
        "New deal: Three",
        "New deal: Two",
        "New deal: One",
    ]
    assert "missed" not in snap
