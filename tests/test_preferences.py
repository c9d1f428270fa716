"""GET/PUT /preferences, and their effect on what a socket receives."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from tests.support import add_user, insert_deal, login, next_frame


async def _auth(http, server, database_url, name="ann"):
    uid = add_user(database_url, name)
    return uid, {"Authorization": f"Bearer {await login(http, server.base, name)}"}


async def test_defaults_then_put_replaces_the_document(server, http, database_url):
    _, auth = await _auth(http, server, database_url)
    async with http.get(f"{server.base}/preferences", headers=auth) as r:
        doc = await r.json()
    assert doc["muted"] is False and doc["min_priority"] == "low"
    assert doc["kinds"]["deal_created"]["muted"] is False
    assert doc["kinds"]["deal_created"]["min_priority"] is None
    assert doc["kinds"]["payment_received"]["default_priority"] == "high"

    new = {"min_priority": "normal", "kinds": {"deal_created": {"muted": True}}}
    async with http.put(f"{server.base}/preferences", json=new, headers=auth) as r:
        assert r.status == 200, await r.text()
        doc = await r.json()
    assert doc["min_priority"] == "normal" and doc["kinds"]["deal_created"]["muted"] is True
    async with http.put(f"{server.base}/preferences", json={}, headers=auth) as r:
        doc = await r.json()
    assert doc["min_priority"] == "low" and doc["kinds"]["deal_created"]["muted"] is False


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kinds": {"no_such_kind": {"muted": True}}}, "kinds"),
        ({"muted": "yes"}, "muted"),
        ({"min_priority": "loud"}, "min_priority"),
        ({"min_priority": None}, "min_priority"),
        ({"kinds": []}, "kinds"),
        ({"kinds": {"deal_created": True}}, "kinds.deal_created"),
        ({"kinds": {"deal_created": {"min_priority": 3}}}, "kinds.deal_created.min_priority"),
    ],
)
async def test_invalid_documents_are_422_naming_the_field(server, http, database_url, body, field):
    _, auth = await _auth(http, server, database_url)
    async with http.put(f"{server.base}/preferences", json=body, headers=auth) as r:
        assert r.status == 422
        error = (await r.json())["error"]
    assert error["code"] == "invalid_request" and error["message"].startswith(field + ":")


async def test_a_muted_kind_is_not_delivered_while_urgent_is(server, http, database_url):
    uid, auth = await _auth(http, server, database_url)
    body = {"kinds": {"deal_created": {"muted": True}}}
    async with http.put(f"{server.base}/preferences", json=body, headers=auth) as r:
        assert r.status == 200
    ws = await http.ws_connect(f"{server.ws_base}/ws?token={auth['Authorization'][7:]}")
    await next_frame(ws, "snapshot")

    await asyncio.to_thread(insert_deal, database_url, "Muted", uid)

    def urgent() -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pgbell.notify('deal_created', user_ids => %s, priority => 'urgent',"
                ' data => \'{"title": "Fire", "amount": 1, "deal_id": 0}\')',
                ([str(uid)],),
            )

    await asyncio.to_thread(urgent)
    # frames arrive in commit order: the muted deal, had it been written, comes first
    frame = await next_frame(ws, "notification", where="for the urgent notification")
    assert frame["notification"]["title"] == "New deal: Fire"
    assert frame["notification"]["priority"] == "urgent"
    assert frame["unread_count"] == 1
