"""The WebSocket half of PROTOCOL.md, line by line, from an independent
client (the `websockets` library, or raw TCP where a client must misbehave)
with psycopg as the SQL writer."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from datetime import datetime

import psycopg
import pytest
from websockets.asyncio.client import connect

from pgbell.http import keys
from tests.contract_client import (
    assert_error,
    assert_silent,
    closed,
    database_outage,
    frame,
    mint,
    open_socket,
    rest,
    snapshot,
)
from tests.support import add_user, insert_deal, login, wait_until

NOTE = "INSERT INTO deals (title, amount, owner_id) VALUES (%s, 1, %s)"


async def _sql(database_url: str, statement: str, params: tuple = ()) -> list[tuple]:
    """A psql-style writer: its own connection, one committed statement."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cur = await conn.execute(statement, params)
        return await cur.fetchall() if cur.description else []


async def _ids(database_url: str, user_id: int) -> list[int]:
    rows = await _sql(
        database_url,
        "SELECT id FROM pgbell.notifications WHERE user_id = %s ORDER BY id",
        (str(user_id),),
    )
    return [r[0] for r in rows]


# --- Authentication -------------------------------------------------------


async def test_plain_http_get_of_ws_is_400_json(server, http):
    status, body = await rest(http, "GET", f"{server.base}/ws")
    assert_error(status, body, 400, "invalid_request", "WebSocket")


async def test_token_in_the_query_opens_with_a_snapshot(server, http, database_url):
    add_user(database_url, "ann")
    ws = await open_socket(server.ws_base, await login(http, server.base, "ann"))
    snap = await snapshot(ws, "with ?token=")
    assert snap == {"type": "snapshot", "unread_count": 0, "notifications": []}
    await ws.close()


async def test_token_in_the_authorization_header_opens_with_a_snapshot(server, http, database_url):
    uid = add_user(database_url, "ann")
    insert_deal(database_url, "Acme", uid)
    ws = await open_socket(server.ws_base, await login(http, server.base, "ann"), header=True)
    snap = await snapshot(ws, "with Authorization: Bearer")
    assert snap["unread_count"] == 1 and len(snap["notifications"]) == 1
    await ws.close()


async def test_bearer_scheme_is_case_insensitive_on_the_socket(server, http, database_url):
    add_user(database_url, "ann")
    token = await login(http, server.base, "ann")
    async with connect(
        f"{server.ws_base}/ws", additional_headers={"Authorization": f"bearer {token}"}
    ) as ws:
        await snapshot(ws, "with Authorization: bearer")


@pytest.mark.parametrize(
    "make",
    [
        lambda uid: None,
        lambda uid: "garbage",
        lambda uid: mint(uid, secret="another-secret-" + "y" * 32),
        lambda uid: (
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
            + base64.urlsafe_b64encode(json.dumps({"sub": str(uid), "exp": 2**40}).encode())
            .decode()
            .rstrip("=")
            + "."
        ),
    ],
    ids=["missing", "garbage", "bad-signature", "alg-none"],
)
@pytest.mark.parametrize("header", [False, True], ids=["query", "header"])
async def test_bad_token_completes_the_handshake_then_closes_4401_unauthorized(
    server, database_url, make, header
):
    uid = add_user(database_url, "ann")
    # open_socket returning at all means the handshake completed (101)
    ws = await open_socket(server.ws_base, make(uid), header=header)
    assert await closed(ws, "for a bad token") == (4401, "unauthorized")


@pytest.mark.parametrize("header", [False, True], ids=["query", "header"])
async def test_expired_token_closes_4401_token_expired(server, database_url, header):
    uid = add_user(database_url, "ann")
    ws = await open_socket(server.ws_base, mint(uid, expires_in=-30), header=header)
    assert await closed(ws, "for an expired token") == (4401, "token_expired")


async def test_socket_is_closed_4401_token_expired_when_its_token_runs_out(server, database_url):
    uid = add_user(database_url, "ann")
    ws = await open_socket(server.ws_base, mint(uid, expires_in=2))
    await snapshot(ws, "with a token good for 2 s")
    assert await closed(ws, "as the token runs out", timeout=6) == (4401, "token_expired")


# --- Server to client -----------------------------------------------------


async def test_snapshot_is_at_most_50_unread_newest_first(server, http, database_url):
    uid = add_user(database_url, "ann")
    await _sql(
        database_url,
        "INSERT INTO deals (title, amount, owner_id)"
        " SELECT 'Deal ' || i, i, %s FROM generate_series(1, 57) AS i",
        (uid,),
    )
    ids = await _ids(database_url, uid)
    newest_read = ids[-1]
    await _sql(
        database_url,
        "UPDATE pgbell.notifications SET read_at = now() WHERE id = ANY (%s)",
        ([ids[0], newest_read],),
    )
    ws = await open_socket(server.ws_base, await login(http, server.base, "ann"))
    snap = await snapshot(ws, "for a user with 55 unread")
    assert snap["unread_count"] == 55
    got = [n["id"] for n in snap["notifications"]]
    unread = [i for i in ids if i not in (ids[0], newest_read)]
    assert got == unread[::-1][:50], "not the 50 newest unread, newest first"
    assert all(n["read_at"] is None for n in snap["notifications"])
    assert "missed" not in snap
    await ws.close()


async def test_committed_notification_arrives_live_with_the_unread_count(
    server, http, database_url
):
    uid = add_user(database_url, "ann")
    insert_deal(database_url, "Old", uid)
    ws = await open_socket(server.ws_base, await login(http, server.base, "ann"))
    await snapshot(ws, "before the insert")
    await _sql(database_url, NOTE, ("Acme", uid))
    got = await frame(ws, "notification", "after a psql INSERT")
    assert set(got) == {"type", "notification", "unread_count"}
    assert got["unread_count"] == 2
    note = got["notification"]
    assert note["title"] == "New deal: Acme" and note["read_at"] is None
    assert note["id"] == (await _ids(database_url, uid))[-1]
    await ws.close()
    # the live object is the one a snapshot and REST give for the same row
    ws = await open_socket(server.ws_base, await login(http, server.base, "ann"))
    snap = await snapshot(ws, "after the live frame")
    await ws.close()
    same = next(n for n in snap["notifications"] if n["id"] == note["id"])
    assert set(note) == set(same)
    for key in ("created_at", "read_at"):
        assert _instant(note[key]) == _instant(same[key]), key
    assert {k: v for k, v in note.items() if not k.endswith("_at")} == {
        k: v for k, v in same.items() if not k.endswith("_at")
    }


def _instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


async def test_unread_count_is_as_of_each_notification_in_one_transaction(
    server, http, database_url
):
    uid = add_user(database_url, "ann")
    ws = await open_socket(server.ws_base, await login(http, server.base, "ann"))
    await snapshot(ws, "before the insert")
    await _sql(
        database_url,
        "INSERT INTO deals (title, amount, owner_id)"
        " SELECT 'Deal ' || i, i, %s FROM generate_series(1, 3) AS i",
        (uid,),
    )
    frames = [await frame(ws, "notification", f"#{i} of one INSERT") for i in range(3)]
    assert [f["unread_count"] for f in frames] == [1, 2, 3]
    ids = [f["notification"]["id"] for f in frames]
    assert ids == sorted(ids) == await _ids(database_url, uid)
    await ws.close()


async def _two_tabs(server, http, database_url, n_notes=3):
    uid = add_user(database_url, "ann")
    for i in range(n_notes):
        insert_deal(database_url, f"Deal {i}", uid)
    token = await login(http, server.base, "ann")
    tabs = [await open_socket(server.ws_base, token) for _ in range(2)]
    for i, ws in enumerate(tabs):
        await snapshot(ws, f"on tab {i}")
    return uid, token, tabs, await _ids(database_url, uid)


async def _read_everywhere(tabs, ids, unread_count, where):
    for i, ws in enumerate(tabs):
        got = await frame(ws, "read", f"on tab {i} {where}")
        assert got == {"type": "read", "ids": ids, "unread_count": unread_count}, got
    for ws in tabs:
        await ws.close()


async def test_rest_read_sends_a_read_frame_to_every_socket(server, http, database_url):
    _, token, tabs, ids = await _two_tabs(server, http, database_url)
    status, _ = await rest(http, "POST", f"{server.base}/notifications/{ids[1]}/read", token=token)
    assert status == 200
    await _read_everywhere(tabs, [ids[1]], 2, "after POST /notifications/{id}/read")


async def test_rest_read_all_sends_a_read_frame_to_every_socket(server, http, database_url):
    _, token, tabs, ids = await _two_tabs(server, http, database_url)
    status, _ = await rest(http, "POST", f"{server.base}/notifications/read-all", token=token)
    assert status == 200
    await _read_everywhere(tabs, ids, 0, "after POST /notifications/read-all")


async def test_ws_read_frame_sends_a_read_frame_to_every_socket(server, http, database_url):
    _, _, tabs, ids = await _two_tabs(server, http, database_url)
    await tabs[0].send(json.dumps({"type": "read", "ids": [ids[0], ids[2]]}))
    await _read_everywhere(tabs, [ids[0], ids[2]], 1, 'after {"type": "read"} on tab 0')


async def test_psql_update_sends_a_read_frame_to_every_socket(server, http, database_url):
    uid, _, tabs, ids = await _two_tabs(server, http, database_url)
    await _sql(
        database_url,
        "UPDATE pgbell.notifications SET read_at = now() WHERE user_id = %s AND id <= %s",
        (str(uid), ids[1]),
    )
    await _read_everywhere(tabs, ids[:2], 1, "after a psql UPDATE of read_at")


async def test_psql_unread_sends_an_unread_frame_to_every_socket(server, http, database_url):
    uid, _, tabs, ids = await _two_tabs(server, http, database_url)
    await _sql(
        database_url,
        "UPDATE pgbell.notifications SET read_at = now() WHERE user_id = %s",
        (str(uid),),
    )
    for i, ws in enumerate(tabs):
        await frame(ws, "read", f"on tab {i} after reading everything")
    await _sql(
        database_url, "UPDATE pgbell.notifications SET read_at = NULL WHERE id = %s", (ids[0],)
    )
    for i, ws in enumerate(tabs):
        got = await frame(ws, "unread", f"on tab {i} after a psql UPDATE to NULL")
        assert got == {"type": "unread", "ids": [ids[0]], "unread_count": 1}, got
        await ws.close()


async def test_ws_read_of_another_users_ids_changes_nothing(server, http, database_url):
    ann = add_user(database_url, "ann")
    add_user(database_url, "bob")
    insert_deal(database_url, "Ann's", ann)
    (ann_note,) = await _ids(database_url, ann)
    ws = await open_socket(server.ws_base, await login(http, server.base, "bob"))
    await snapshot(ws, "for bob")
    await ws.send(json.dumps({"type": "read", "ids": [ann_note]}))
    await assert_silent(ws, "bob, after reading ann's id")
    rows = await _sql(
        database_url, "SELECT read_at FROM pgbell.notifications WHERE id = %s", (ann_note,)
    )
    assert rows == [(None,)], "bob's read frame marked ann's notification read"
    await ws.close()


async def test_ws_read_while_the_database_is_away_is_an_error_not_a_drop(
    server, http, database_url, pg_url
):
    uid = add_user(database_url, "ann")
    insert_deal(database_url, "Acme", uid)
    (note_id,) = await _ids(database_url, uid)
    ws = await open_socket(server.ws_base, await login(http, server.base, "ann"))
    await snapshot(ws, "before the outage")
    async with database_outage(pg_url, database_url):
        await ws.send(json.dumps({"type": "read", "ids": [note_id]}))
        got = await frame(ws, "error", "for a read while the database is away")
        assert got["error"]["code"] == "unavailable"
        await assert_silent(ws, "after the failed read")
    await ws.send(json.dumps({"type": "read", "ids": [note_id]}))
    got = await frame(ws, "read", "for the same read once the database is back", timeout=15)
    assert got["ids"] == [note_id]
    await ws.close()


# --- Client to server -----------------------------------------------------


async def _socket(server, http, database_url, **kwargs):
    add_user(database_url, "ann")
    ws = await open_socket(server.ws_base, await login(http, server.base, "ann"), **kwargs)
    await snapshot(ws, "on connect")
    return ws


async def test_ping_is_answered_pong(server, http, database_url):
    ws = await _socket(server, http, database_url)
    await assert_silent(ws, "a quiet socket")
    await ws.close()


@pytest.mark.parametrize(
    "text",
    ["not json", "", "{", "[]", '"ping"', "null", "{}", '{"type": 5}', '{"type": null}'],
)
async def test_unparseable_frame_is_an_error_and_the_socket_stays_open(
    server, http, database_url, text
):
    ws = await _socket(server, http, database_url)
    await ws.send(text)
    got = await frame(ws, "error", f"for the frame {text!r}")
    assert got["error"]["code"] == "invalid_request" and got["error"]["message"]
    await assert_silent(ws, f"after the frame {text!r}")
    await ws.close()


@pytest.mark.parametrize(
    "message",
    [
        {"type": "subscribe"},
        {"type": "PING"},
        {"type": "read"},
        {"type": "read", "ids": []},
        {"type": "read", "ids": ["1"]},
        {"type": "read", "ids": [True]},
        {"type": "read", "ids": [0]},
        {"type": "read", "ids": [2**63]},
        {"type": "read", "ids": 7},
    ],
    ids=lambda m: json.dumps(m),
)
async def test_unknown_or_invalid_frame_is_an_error(server, http, database_url, message):
    ws = await _socket(server, http, database_url)
    await ws.send(json.dumps(message))
    got = await frame(ws, "error", f"for {message}")
    assert got["error"]["code"] == "invalid_request"
    await assert_silent(ws, f"after {message}")
    await ws.close()


async def test_binary_frame_is_an_error(server, http, database_url):
    ws = await _socket(server, http, database_url)
    await ws.send(json.dumps({"type": "ping"}).encode())
    got = await frame(ws, "error", "for a binary frame")
    assert got["error"]["code"] == "invalid_request"
    await assert_silent(ws, "after a binary frame")
    await ws.close()


async def test_frame_over_the_size_limit_closes_1009(server, http, database_url, settings):
    ws = await _socket(server, http, database_url)
    padding = "x" * settings.ws_max_frame_bytes
    await ws.send(json.dumps({"type": "ping", "padding": padding}))
    code, _ = await closed(ws, "after a frame over PGBELL_WS_MAX_FRAME_BYTES")
    assert code == 1009


async def test_frame_just_under_the_size_limit_is_read(server, http, database_url, settings):
    ws = await _socket(server, http, database_url)
    text = json.dumps({"type": "ping", "padding": ""})
    padding = "x" * (settings.ws_max_frame_bytes - len(text))
    await ws.send(json.dumps({"type": "ping", "padding": padding}))
    got = await frame(ws, "pong", "for a frame of exactly the limit")
    assert got == {"type": "pong"}
    await ws.close()


# --- Resume ---------------------------------------------------------------


async def test_resume_since_carries_missed_oldest_first_read_or_not_only_mine(
    server, http, database_url
):
    ann = add_user(database_url, "ann")
    bob = add_user(database_url, "bob")
    for i in range(4):
        insert_deal(database_url, f"Ann {i}", ann)
        insert_deal(database_url, f"Bob {i}", bob)
    ids = await _ids(database_url, ann)
    await _sql(
        database_url, "UPDATE pgbell.notifications SET read_at = now() WHERE id = %s", (ids[2],)
    )

    ws = await open_socket(server.ws_base, await login(http, server.base, "ann"), since=ids[0])
    snap = await snapshot(ws, f"on resume since={ids[0]}")
    missed = snap["missed"]
    assert [n["id"] for n in missed] == ids[1:], "missed: ids above since, oldest first"
    assert missed[1]["read_at"] is not None, "a read notification is still missed"
    assert all(n["title"].startswith("New deal: Ann") for n in missed), "another user's rows"
    assert snap["unread_count"] == 3
    assert [n["id"] for n in snap["notifications"]] == [ids[3], ids[1], ids[0]]
    await ws.close()

    # From the newest id nothing is above it. A lower id may come again only
    # if its transaction could have committed after the newest was written:
    # its xid is at least the horizon stored with the newest (a transaction
    # open anywhere in the cluster, another test's, holds the horizon back).
    # With nothing else running, that is none of them.
    (horizon,) = await _sql(
        database_url,
        "SELECT horizon FROM pgbell.notifications WHERE id = %s",
        (ids[-1],),
    )
    may_repeat = await _sql(
        database_url,
        "SELECT id FROM pgbell.notifications WHERE user_id = %s AND id < %s AND xid >= %s"
        " ORDER BY id",
        (str(ann), ids[-1], horizon[0]),
    )
    ws = await open_socket(server.ws_base, await login(http, server.base, "ann"), since=ids[-1])
    missed = (await snapshot(ws, "on resume from the newest id"))["missed"]
    assert [n["id"] for n in missed] == [r[0] for r in may_repeat]
    await ws.close()


async def test_resume_since_another_users_id_shows_nothing_of_theirs(server, http, database_url):
    ann = add_user(database_url, "ann")
    bob = add_user(database_url, "bob")
    insert_deal(database_url, "Ann 0", ann)
    insert_deal(database_url, "Bob 0", bob)
    insert_deal(database_url, "Ann 1", ann)
    bob_ids = await _ids(database_url, bob)
    ws = await open_socket(server.ws_base, await login(http, server.base, "ann"), since=bob_ids[0])
    snap = await snapshot(ws, "on resume from bob's id")
    assert [n["title"] for n in snap["missed"]] == ["New deal: Ann 1"]
    await ws.close()


async def test_resume_past_10000_missed_is_truncated_and_says_so(start_server, http, database_url):
    # the count bound alone: 10,000 rows of ~170 bytes pass the default byte bound
    server = await start_server(PGBELL_RESUME_MAX_BYTES=str(16 * 1024 * 1024))
    uid = add_user(database_url, "ann")
    await _sql(
        database_url,
        "INSERT INTO pgbell.notifications (user_id, kind, title)"
        " SELECT %s, 'bulk', 'Bulk ' || i FROM generate_series(1, 10001) AS i",
        (uid,),
    )
    ids = await _ids(database_url, uid)
    token = await login(http, server.base, "ann")
    ws = await open_socket(server.ws_base, token, since=0, max_size=None)
    snap = await snapshot(ws, "on resume since=0 with 10,001 missed")
    assert snap["missed_truncated"] is True
    assert [n["id"] for n in snap["missed"]] == ids[:10_000], "the oldest 10,000, oldest first"
    await ws.close()
    ws = await open_socket(server.ws_base, token, since=ids[0], max_size=None)
    snap = await snapshot(ws, "on resume with exactly 10,000 missed")
    assert len(snap["missed"]) == 10_000 and "missed_truncated" not in snap
    await ws.close()


@pytest.mark.parametrize("since", ["abc", "-1", "1.5", "\u00b2"])
async def test_malformed_since_gets_a_plain_snapshot_then_an_error_frame(
    server, http, database_url, since
):
    add_user(database_url, "ann")
    ws = await open_socket(server.ws_base, await login(http, server.base, "ann"), since=since)
    assert "missed" not in await snapshot(ws, f"with since={since!r}")
    got = await frame(ws, "error", f"for since={since!r}")
    assert got["error"]["code"] == "invalid_request" and "since" in got["error"]["message"]
    await assert_silent(ws, f"after since={since!r}")
    await ws.close()


# --- The resume race: ids are not commit order ------------------------------


class LowerIdCommitsLast:
    """Two writers for one user: A takes the lower notification id, B the
    higher one, and B commits first. A client that remembers "the last id I
    saw" would skip A's notification forever."""

    def __init__(self, database_url: str, user_id: int) -> None:
        self.url = database_url
        self.user_id = user_id

    async def __aenter__(self) -> LowerIdCommitsLast:
        self.a = await psycopg.AsyncConnection.connect(self.url)
        b = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        async with b:
            await self.a.execute(NOTE, ("Slow writer", self.user_id))
            self.lo = await self._newest(self.a)
            await b.execute(NOTE, ("Fast writer", self.user_id))
            self.hi = await self._newest(b)
        assert self.lo < self.hi, (self.lo, self.hi)
        return self

    async def _newest(self, conn) -> int:
        cur = await conn.execute(
            "SELECT max(id) FROM pgbell.notifications WHERE user_id = %s", (str(self.user_id),)
        )
        return (await cur.fetchone())[0]

    async def commit_the_lower_id(self) -> None:
        await self.a.commit()

    async def __aexit__(self, *exc) -> None:
        await self.a.close()


async def test_resume_after_a_lower_id_commits_late_misses_nothing(server, http, database_url):
    uid = add_user(database_url, "ann")
    token = await login(http, server.base, "ann")
    ws = await open_socket(server.ws_base, token)
    await snapshot(ws, "before the writers")
    async with LowerIdCommitsLast(database_url, uid) as race:
        live = await frame(ws, "notification", "for the higher id, committed first")
        assert live["notification"]["id"] == race.hi
        await ws.close()  # the client goes away, remembering race.hi
        await race.commit_the_lower_id()

    ws = await open_socket(server.ws_base, token, since=race.hi)
    snap = await snapshot(ws, f"on resume since={race.hi}")
    missed = [n["id"] for n in snap["missed"]]
    # a naive "id > since" would answer [] here: race.lo < race.hi
    assert race.lo in missed, f"resume since={race.hi} lost id {race.lo} (missed: {missed})"
    assert {race.hi} | set(missed) >= {race.lo, race.hi}
    assert missed == [race.lo], "missed carries what the client did not have, nothing else"
    await ws.close()


async def test_live_socket_gets_both_when_the_lower_id_commits_last(server, http, database_url):
    uid = add_user(database_url, "ann")
    ws = await open_socket(server.ws_base, await login(http, server.base, "ann"))
    await snapshot(ws, "before the writers")
    async with LowerIdCommitsLast(database_url, uid) as race:
        first = await frame(ws, "notification", "for the higher id, committed first")
        await race.commit_the_lower_id()
        second = await frame(ws, "notification", "for the lower id, committed last")
    assert [first["notification"]["id"], second["notification"]["id"]] == [race.hi, race.lo]
    assert [first["unread_count"], second["unread_count"]] == [1, 2]
    await ws.close()


async def test_resume_while_the_lower_id_is_in_flight_gets_it_live(server, http, database_url):
    uid = add_user(database_url, "ann")
    token = await login(http, server.base, "ann")
    ws = await open_socket(server.ws_base, token)
    await snapshot(ws, "before the writers")
    async with LowerIdCommitsLast(database_url, uid) as race:
        await frame(ws, "notification", "for the higher id, committed first")
        await ws.close()
        ws = await open_socket(server.ws_base, token, since=race.hi)
        snap = await snapshot(ws, f"on resume since={race.hi}, the lower id uncommitted")
        assert snap["missed"] == []
        await race.commit_the_lower_id()
        late = await frame(ws, "notification", "for the lower id, committed after the resume")
    assert late["notification"]["id"] == race.lo
    await ws.close()


async def test_reconnecting_client_misses_nothing_under_concurrent_writers(
    server, http, database_url
):
    """Four writers hold their ids for a random while before committing, so
    ids commit out of order, while a client keeps dropping and resuming with
    since=<highest id seen>. Every committed notification must reach it."""
    uid = add_user(database_url, "ann")
    token = await login(http, server.base, "ann")
    rng = random.Random(7)

    async def writer(n: int) -> None:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            for i in range(30):
                await conn.execute(NOTE, (f"W{n} {i}", uid))
                await asyncio.sleep(rng.uniform(0, 0.02))
                await conn.commit()

    # the client starts from a notification it has, so every session resumes
    insert_deal(database_url, "Seed", uid)
    seen: set[int] = set(await _ids(database_url, uid))

    async def session(duration: float) -> None:
        ws = await open_socket(server.ws_base, token, since=max(seen))
        snap = await snapshot(ws, f"on resume since={max(seen)}")
        # only missed and live frames count: the unread list in the snapshot
        # would hide a gap in missed as long as everything stays unread
        seen.update(n["id"] for n in snap.get("missed", []))
        try:
            async with asyncio.timeout(duration):
                while True:
                    got = json.loads(await ws.recv())
                    if got["type"] == "notification":
                        seen.add(got["notification"]["id"])
        except TimeoutError:
            pass
        await ws.close()

    writers = asyncio.gather(*(writer(n) for n in range(4)))
    sessions = 0
    while not writers.done():
        await session(rng.uniform(0.01, 0.05))
        sessions += 1
    await writers
    await session(0.01)  # one last resume, after every commit
    committed = set(await _ids(database_url, uid))
    assert len(committed) == 121
    lost = sorted(committed - seen)
    assert not lost, (
        f"{len(lost)} notifications never reached the client over {sessions} resumes: {lost[:10]}"
    )
    assert sessions > 5, "the client did not reconnect often enough to test anything"


async def test_two_servers_deliver_to_every_socket_of_a_user(
    server, http, database_url, start_server
):
    """Servers share nothing but the database: a write through one reaches
    the user's sockets on both, and so does a read."""
    other_ws_base = (await start_server()).ws_base
    add_user(database_url, "ann")
    token = await login(http, server.base, "ann")
    here = await open_socket(server.ws_base, token)
    there = await open_socket(other_ws_base, token)
    for ws, where in ((here, "on server A"), (there, "on server B")):
        await snapshot(ws, where)
    status, body = await rest(
        http, "POST", f"{server.base}/deals", token=token, json={"title": "Acme", "amount": 1}
    )
    assert status == 201, body
    notes = [await frame(ws, "notification", w) for ws, w in ((here, "on A"), (there, "on B"))]
    assert notes[0] == notes[1]
    note_id = notes[0]["notification"]["id"]
    await there.send(json.dumps({"type": "read", "ids": [note_id]}))
    for ws, where in ((here, "on A"), (there, "on B")):
        got = await frame(ws, "read", f"{where} after a read sent to B")
        assert got == {"type": "read", "ids": [note_id], "unread_count": 0}
        await ws.close()


async def test_one_socket_past_the_per_user_limit_is_closed_4429(start_server, database_url):
    """v2: at most PGBELL_MAX_SOCKETS_PER_USER sockets per user and process."""
    srv = await start_server(PGBELL_MAX_SOCKETS_PER_USER="3")
    ann, bob = add_user(database_url, "ann"), add_user(database_url, "bob")
    sockets = [await open_socket(srv.ws_base, mint(ann)) for _ in range(3)]
    for i, ws in enumerate(sockets):
        await snapshot(ws, f"on ann's socket {i}")
    extra = await open_socket(srv.ws_base, mint(ann))
    assert await closed(extra, "ann's fourth socket") == (4429, "too_many_connections")
    # another user is not counted against ann
    other = await open_socket(srv.ws_base, mint(bob))
    await snapshot(other, "for bob while ann is at her limit")
    # a closed socket frees its place, once the server has seen it go
    await sockets.pop().close()
    hub = srv.pgbell_app[keys.HUB]
    await wait_until(lambda: hub.sockets_of(str(ann)) == 2, "the server dropping the socket")
    replacement = await open_socket(srv.ws_base, mint(ann))
    await snapshot(replacement, "for ann once one of her sockets closed")
    for ws in (*sockets, other, replacement):
        await ws.close()
