"""The feed's unread counts, kept between looks, are the database's.

The feed counts a user's unread rows when the user is new to it, when the
user's read state changes and once COUNT_REFRESH_SECONDS have passed; in
between it adds the new unread rows it reads. Each look here is checked
against a count of the table at that moment (nothing else writes). Counting
a user reads that user's unread rows, not the whole unread index.
"""

from __future__ import annotations

import json

import asyncpg
import pytest

from pgbell.bus import feed as feed_module
from pgbell.bus.feed import Feed
from pgbell.sql import Q


async def _unread(conn: asyncpg.Connection, user: str) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM pgbell.notifications"
        " WHERE user_id = $1 AND read_at IS NULL AND archived_at IS NULL",
        user,
    )


async def _counts_in(batch) -> dict[str, int]:
    """The unread_count of each user's last frame of the batch."""
    last: dict[str, int] = {}
    for frame in batch.frames:
        last[frame.user_id] = json.loads(frame.text)["unread_count"]
    return last


@pytest.fixture
async def conns(ping_database: str):
    pool = await asyncpg.create_pool(ping_database, min_size=1, max_size=2)
    look = await asyncpg.connect(ping_database)
    await look.execute(Q.listener_session)  # the listener's own session
    writer = await asyncpg.connect(ping_database)
    yield pool, look, writer
    await pool.close()
    await look.close()
    await writer.close()


async def test_counts_follow_new_rows_reads_and_a_refresh_after_deletes(conns, monkeypatch):
    pool, look, writer = conns
    users = ["ann", "bob"]
    feed = Feed(pool, lambda: users)
    await feed.start()

    async def notify(user: str, n: int) -> None:
        for _ in range(n):
            await writer.execute("SELECT pgbell.notify('ping', ARRAY[$1])", user)

    async def expect(what: str) -> None:
        got = await _counts_in(await feed.poll(look))
        want = {u: await _unread(writer, u) for u in got}
        assert got == want, f"{what}: the frames' counts {got}, the table's {want}"
        assert got, f"{what}: no frame"

    await notify("ann", 3)
    await expect("new users, counted by the statement")
    await notify("ann", 2)
    await notify("bob", 1)
    await expect("kept counts plus new rows")
    await writer.execute(
        "UPDATE pgbell.notifications SET read_at = now()"
        " WHERE id = (SELECT min(id) FROM pgbell.notifications WHERE user_id = 'ann')"
    )
    await notify("ann", 1)
    await expect("a read in the same look as a new row")
    await writer.execute(
        "UPDATE pgbell.notifications SET read_at = NULL WHERE user_id = 'ann';"
        " UPDATE pgbell.notifications SET archived_at = now()"
        " WHERE id = (SELECT max(id) FROM pgbell.notifications WHERE user_id = 'bob')"
    )
    await notify("bob", 1)
    await expect("unread and archived changes")
    # a row deleted is not seen by the feed: the refresh counts again
    await writer.execute(
        "DELETE FROM pgbell.notifications"
        " WHERE id = (SELECT min(id) FROM pgbell.notifications WHERE user_id = 'ann')"
    )
    monkeypatch.setattr(feed_module, "COUNT_REFRESH_SECONDS", 0.0)
    await notify("ann", 1)
    await expect("a refresh after a delete")


async def test_a_user_who_leaves_and_comes_back_is_counted_again(conns):
    pool, look, writer = conns
    users = ["ann"]
    feed = Feed(pool, lambda: users)
    await feed.start()
    await writer.execute("SELECT pgbell.notify('ping', ARRAY['ann'])")
    assert await _counts_in(await feed.poll(look)) == {"ann": 1}
    users = []  # ann's last socket closed: her rows are no longer read
    await feed.poll(look)
    await writer.execute("SELECT pgbell.notify('ping', ARRAY['ann'])")
    await writer.execute("DELETE FROM pgbell.notifications WHERE user_id = 'ann'")
    await writer.execute("SELECT pgbell.notify('ping', ARRAY['ann'])")
    await feed.poll(look)
    users = ["ann"]
    assert await _counts_in(await feed.poll(look)) == {"ann": 1}


async def test_a_look_sees_new_rows_for_anyone_which_keeps_the_listener_awake(conns):
    pool, look, writer = conns
    feed = Feed(pool, lambda: ["ann"])
    await feed.start()
    await writer.execute("SELECT pgbell.notify('ping', ARRAY['zed', 'yan'])")
    batch = await feed.poll(look)
    assert batch.frames == [] and batch.seen == 2, "rows for others are seen, not sent"
    batch = await feed.poll(look)
    assert batch.seen == 0, "and only once"


async def test_counting_a_user_reads_that_users_unread_rows_not_everyones(conns):
    pool, look, writer = conns
    await writer.execute(
        "INSERT INTO pgbell.notifications (user_id, kind, title)"
        " SELECT 'other' || (i % 50), 'ping', 'Ping' FROM generate_series(1, 5000) AS i"
    )
    feed = Feed(pool, lambda: ["ann"])
    await feed.start()
    for _ in range(2):
        await writer.execute("SELECT pgbell.notify('ping', ARRAY['ann'])")
    async with look.transaction():
        # ann is new to the feed: the look counts her unread rows
        assert await _counts_in(await feed.poll(look)) == {"ann": 2}
        # this transaction's reads of the index, as pg_stat_user_indexes.idx_tup_read
        read = await look.fetchval(
            "SELECT pg_stat_get_xact_tuples_returned('pgbell.notifications_unread_idx'::regclass)"
        )
    assert read <= 10, f"counting ann read {read} entries of the unread index"


async def test_each_frame_counts_as_of_its_row_when_a_later_row_is_archived(conns):
    """A batch's frames carry the count as of each notification: counted back
    from the total over the later rows still unread. A later row archived
    unread (read_at NULL, archived_at set) is not unread."""
    pool, look, writer = conns
    feed = Feed(pool, lambda: ["ann"])
    await feed.start()
    await writer.execute("SELECT pgbell.notify('ping', ARRAY['ann'])")
    await feed.poll(look)  # ann counted: 1
    async with writer.transaction():
        await writer.execute("SELECT pgbell.notify('ping', ARRAY['ann'])")
        first = await writer.fetchval(
            "SELECT max(id) FROM pgbell.notifications WHERE user_id = 'ann'"
        )
        await writer.execute("SELECT pgbell.notify('ping', ARRAY['ann'])")
        await writer.execute(
            "UPDATE pgbell.notifications SET archived_at = now() WHERE user_id = 'ann' AND id > $1",
            first,
        )
    frames = [json.loads(f.text) for f in (await feed.poll(look)).frames]
    got = [
        (f["notification"]["id"], f["unread_count"]) for f in frames if f["type"] == "notification"
    ]
    assert len(got) == 2 and got[0][0] == first, got
    # after the first new row: 2 unread; after the second, archived: still 2
    assert [n for _, n in got] == [2, 2], got
    assert await _unread(writer, "ann") == 2
