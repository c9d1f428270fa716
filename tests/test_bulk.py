"""One transaction, 10,000 deals: every notification arrives, few wake-ups."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import psycopg

from pgbell.http import keys
from tests.support import add_user, login, next_frame

DEALS = 10_000
OWNERS = 10


def _bulk_insert(url: str, owners: list[int]) -> list[int]:
    with psycopg.connect(url) as conn:
        ids = conn.execute(
            "INSERT INTO deals (title, amount, owner_id)"
            " SELECT 'Bulk ' || g, g, (%s::bigint[])[1 + g %% %s] FROM generate_series(1, %s) AS g"
            " RETURNING id",
            (owners, len(owners), DEALS),
        ).fetchall()
        conn.commit()
    return [r[0] for r in ids]


async def _collect(ws: aiohttp.ClientWebSocketResponse, want: int, timeout: float) -> set[int]:
    deals: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(deals) < want:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            msg = await asyncio.wait_for(ws.receive(), left)
        except TimeoutError:
            break
        assert msg.type == aiohttp.WSMsgType.TEXT, f"socket ended: {msg.type} {msg.data!r}"
        frame = json.loads(msg.data)
        if frame["type"] == "notification":
            deals.add(frame["notification"]["data"]["deal_id"])
    return deals


async def test_ten_thousand_deals_in_one_transaction(server, http, database_url):
    owners = [add_user(database_url, f"owner{i}") for i in range(OWNERS)]
    add_user(database_url, "boss", ("manager",))
    sockets = {}
    for i, uid in enumerate([*owners, "boss"]):
        name = "boss" if uid == "boss" else f"owner{i}"
        ws = await http.ws_connect(
            f"{server.ws_base}/ws?token={await login(http, server.base, name)}"
        )
        await next_frame(ws, "snapshot")
        sockets[name] = ws
    listener = server.pgbell_app[keys.LISTENER]
    feed = server.pgbell_app[keys.FEED]
    wakeups_before, polls_before = listener.notifies_received, feed.stats.polls_with_rows

    deal_ids = await asyncio.to_thread(_bulk_insert, database_url, owners)
    assert len(deal_ids) == DEALS

    # deal g (in generate_series order) belongs to owners[(g % OWNERS)]
    expected = {
        f"owner{j}": {d for g, d in enumerate(deal_ids, 1) if g % OWNERS == j}
        for j in range(OWNERS)
    }
    expected["boss"] = set(deal_ids)
    got = await asyncio.gather(*(_collect(sockets[n], len(expected[n]), 60) for n in sockets))
    for name, deals in zip(sockets, got, strict=True):
        missing = expected[name] - deals
        assert not missing, f"{name} missed {len(missing)} of {len(expected[name])} deals"
    # one transaction, at most one NOTIFY (none if the server was awake);
    # the feed read everything in a handful of looks (an awake server looks
    # again every few ms, finding nothing)
    assert listener.notifies_received - wakeups_before <= 1
    assert feed.stats.polls_with_rows - polls_before <= 3
