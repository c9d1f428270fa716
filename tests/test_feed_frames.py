"""The feed's notification frames: each row once, to a user new to the feed
too, and the notification object the same text, byte for byte, that
json_build_object makes of its fields, whatever the text holds (quotes,
backslashes, control characters, any Unicode), with or without action_url
and read_at."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import asyncpg
import pytest

from pgbell.bus.feed import Feed
from pgbell.sql import Q

PREFIX = '{"type":"notification","notification":'
TRICKY = ['"quoted" \\ back\\slash', "line\nbreak\ttab\x01\x1f\x7f", "é 😀 \u2028 </script>", ""]
# as a writer may give it: numbers as written, nested, nulls, escapes
DATA = '{"amount": 12000.00, "big": 1e3, "list": [1.50, null, true], "s": "\\u0001\\"", "o": {}}'
# a fraction of a second with trailing zeros, and none at all
CREATED = [
    datetime(2024, 5, 6, 7, 8, 9, 120000, tzinfo=UTC),
    datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
]
JSON_BUILD_OBJECT = """
SELECT json_build_object('id', id, 'kind', kind, 'title', title, 'body', body,
                         'priority', priority::text, 'action_url', action_url, 'data', data,
                         'created_at', created_at, 'read_at', read_at)::text
  FROM pgbell.notifications WHERE id = $1
"""


@pytest.fixture
async def conns(ping_database: str):
    pool = await asyncpg.create_pool(ping_database, min_size=1, max_size=2)
    look = await asyncpg.connect(ping_database)
    await look.execute(Q.listener_session)  # the listener's own session: TimeZone UTC
    writer = await asyncpg.connect(ping_database, server_settings={"TimeZone": "UTC"})
    yield pool, look, writer
    await pool.close()
    await look.close()
    await writer.close()


async def test_the_notification_object_is_json_build_objects_text(conns):
    pool, look, writer = conns
    feed = Feed(pool, lambda: ["ann"])
    await feed.start()
    ids = []
    for i, text in enumerate(TRICKY):
        for priority, action_url, read_at in [
            ("low", None, None),
            ("urgent", f"/deals/{i}?q={text}", CREATED[0]),
        ]:
            ids.append(
                await writer.fetchval(
                    "INSERT INTO pgbell.notifications"
                    " (user_id, kind, title, body, priority, action_url, data, created_at, read_at)"
                    " VALUES ('ann', $1, $2, $3, $4, $5, $6::jsonb, $7, $8) RETURNING id",
                    f"kind{text}",
                    text,
                    text * 2,
                    priority,
                    action_url,
                    DATA,
                    CREATED[i % 2],
                    read_at,
                )
            )
    frames = (await feed.poll(look)).frames
    assert [f.ids for f in frames] == [frozenset((i,)) for i in ids], "one frame per row"
    for frame, id_ in zip(frames, ids, strict=True):
        assert frame.text.startswith(PREFIX), frame.text
        doc = frame.text[len(PREFIX) : frame.text.rindex(',"unread_count":')]
        want = await writer.fetchval(JSON_BUILD_OBJECT, id_)
        assert doc == want, f"notification {id_}: the frame carries {doc!r}, not {want!r}"
        assert json.loads(frame.text)["notification"]["id"] == id_
        created = await writer.fetchval(
            "SELECT created_at FROM pgbell.notifications WHERE id = $1", id_
        )
        assert frame.created_at == pytest.approx(created.timestamp(), abs=1e-6)


async def test_a_user_new_to_the_feed_gets_the_rows_of_the_look_before_and_none_twice(conns):
    pool, look, writer = conns
    users = ["bob"]
    feed = Feed(pool, lambda: users)
    await feed.start()

    async def notify(user: str) -> int:
        await writer.execute("SELECT pgbell.notify('ping', ARRAY[$1])", user)
        return await writer.fetchval(
            "SELECT max(id) FROM pgbell.notifications WHERE user_id = $1", user
        )

    async def delivered() -> list[tuple[str, int]]:
        return [(f.user_id, min(f.ids)) for f in (await feed.poll(look)).frames]

    ann_1, bob_1 = await notify("ann"), await notify("bob")
    assert await delivered() == [("bob", bob_1)], "ann has no socket yet"
    # ann's socket registers after that look's statement began: the next look
    # reads her rows from the snapshot before it
    users = ["bob", "ann"]
    bob_2 = await notify("bob")
    assert sorted(await delivered()) == sorted([("ann", ann_1), ("bob", bob_2)])
    ann_2 = await notify("ann")
    assert await delivered() == [("ann", ann_2)], "no row a second time"
    assert await delivered() == []
