"""Many sockets connecting at once share their snapshot queries
(pgbell.http.snapshots) and their token checks, and each still gets exactly
its own rows, with nothing committed meanwhile lost or sent twice."""

from __future__ import annotations

import asyncio
import json
import time

import asyncpg
import psycopg

from pgbell.http import keys
from pgbell.http.snapshots import BATCH_MISSED
from tests.contract_client import bearer, closed, mint, open_socket, snapshot
from tests.support import DEFAULT_WAIT, add_user, login

USERS = 50


async def _execute(database_url: str, statement: str, params: tuple = ()) -> list[tuple]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(statement, params)
        return await cur.fetchall() if cur.description else []


async def _notify(database_url: str, user: str, title: str) -> int:
    rows = await _execute(
        database_url,
        "INSERT INTO pgbell.notifications (user_id, kind, title) VALUES (%s, 'test', %s)"
        " RETURNING id",
        (user, title),
    )
    return rows[0][0]


async def _own_rows(database_url: str) -> dict[str, list[int]]:
    rows = await _execute(database_url, "SELECT user_id, id FROM pgbell.notifications ORDER BY id")
    mine: dict[str, list[int]] = {}
    for user, nid in rows:
        mine.setdefault(user, []).append(nid)
    return mine


async def test_many_sockets_at_once_each_get_their_own_rows_once(server, database_url):
    users = [f"batch-{i}" for i in range(USERS)]
    for u in users:
        # the first user missed more than a batch reads: its socket reads its own
        for k in range(BATCH_MISSED + 5 if u == users[0] else 3):
            await _notify(database_url, u, f"{u} before {k}")
    before = await _own_rows(database_url)
    # two sockets per user: one fresh, one resuming from the user's first row
    plans = [(u, None) for u in users] + [(u, before[u][0]) for u in users]
    tokens = {u: mint(u) for u in users}

    async def commit_meanwhile() -> None:
        for i in range(40):
            u = users[(i * 7) % USERS]
            await _notify(database_url, u, f"{u} during {i}")

    async def connect(user: str, since: int | None):
        ws = await open_socket(server.ws_base, tokens[user], since=since)
        return ws, await snapshot(ws, f"for {user} since={since}")

    writer = asyncio.create_task(commit_meanwhile())
    opened = await asyncio.gather(*(connect(u, s) for u, s in plans))
    await writer
    committed = await _own_rows(database_url)
    owner = {nid: u for u, ids in committed.items() for nid in ids}
    try:
        for (user, since), (ws, snap) in zip(plans, opened, strict=True):
            shown = [n["id"] for n in snap["notifications"]]
            missed = [n["id"] for n in snap.get("missed", [])]
            assert all(owner[i] == user for i in shown + missed), f"{user} got another's rows"
            # the snapshot is one moment: what it shows is what was committed then
            unread_then = [i for i in committed[user] if i <= max(shown)][::-1]
            assert shown == unread_then, f"{user}: the newest unread, newest first"
            assert snap["unread_count"] == len(shown)
            if since is None:
                assert "missed" not in snap
            else:
                assert missed == [i for i in committed[user] if since < i <= max(shown)]
            # the rest of the user's rows arrive live, each once, none shown already
            owed = [i for i in committed[user] if i > max(shown)]
            live: list[int] = []
            deadline = time.monotonic() + DEFAULT_WAIT
            while len(live) < len(owed):
                left = deadline - time.monotonic()
                assert left > 0, f"{user} since={since}: live {live}, expected {owed}"
                got = json.loads(await asyncio.wait_for(ws.recv(), left))
                if got["type"] == "notification":
                    live.append(got["notification"]["id"])
            assert live == owed, f"{user} since={since}: live frames, each once, in order"
    finally:
        await asyncio.gather(*(ws.close() for ws, _ in opened))
    assert server.pgbell_app[keys.SNAPSHOTS].alone >= 1, "no resume read its own snapshot"


async def test_sockets_connecting_together_share_snapshot_queries(
    server, database_url, monkeypatch
):
    users = [f"shared-{i}" for i in range(USERS)]
    for u in users:
        await _notify(database_url, u, f"{u} note")
    acquired = 0
    acquire = asyncpg.Pool.acquire

    def counting_acquire(self, *args, **kwargs):
        nonlocal acquired
        acquired += 1
        return acquire(self, *args, **kwargs)

    # every query the server sends borrows a pooled connection first
    monkeypatch.setattr(asyncpg.Pool, "acquire", counting_acquire)
    plans = [(u, None) for u in users] + [(u, 0) for u in users]
    opened = await asyncio.gather(
        *(open_socket(server.ws_base, mint(u), since=s) for u, s in plans)
    )
    snaps = [await snapshot(ws, "while connecting together") for ws in opened]
    monkeypatch.undo()
    assert all(s["unread_count"] == 1 for s in snaps)
    assert acquired < len(plans) / 4, f"{acquired} database round trips for {len(plans)} sockets"
    await asyncio.gather(*(ws.close() for ws in opened))


async def test_a_revoked_token_is_refused_though_it_was_checked_before(server, http, database_url):
    add_user(database_url, "ann", password="old-pw")
    token = await login(http, server.base, "ann", password="old-pw")
    ws = await open_socket(server.ws_base, token)
    await snapshot(ws, "before the password changes")  # the token is now known good
    await ws.close()
    await _execute(
        database_url,
        "UPDATE pgbell.users SET token_version = token_version + 1 WHERE username = 'ann'",
    )
    again = await open_socket(server.ws_base, token)
    code, reason = await closed(again, "with a revoked token")
    assert (code, reason) == (4401, "unauthorized")
    async with http.get(f"{server.base}/notifications", headers=bearer(token)) as r:
        assert r.status == 401
