"""The adaptive wake-up's 16 slots (db/triggers/903_wake_servers_v4.sql):
a writer checks in its session's slot only, so a server must fall asleep
in every slot and be kept awake by a writer in any of them.

The server's side is its real SQL (pgbell.sql Q.fall_asleep, mark_asleep,
wake_up) on a session of its own; the writers are real sessions, one per
slot, calling pgbell.notify() so that the installed trigger decides.
tests/test_wakeup_interleavings.py steps writers of several slots and the
real Listener through every ordering; this file checks each slot.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from pgbell.bus.listener import CHANNEL
from pgbell.sql import Q
from tests.support import DEFAULT_WAIT, WAKE_SLOTS, connections_in_every_slot

KEY = 1885823596  # "pgbl", the advisory locks' first key

HELD = """
SELECT objid::int, mode FROM pg_locks
 WHERE locktype = 'advisory' AND classid = $1::oid AND objsubid = 2 AND pid = $2 AND granted
 ORDER BY objid, mode
"""


@pytest.fixture
async def slots(ping_database: str):
    writers = await connections_in_every_slot(ping_database)
    server = await asyncpg.connect(ping_database)
    await server.execute(Q.listener_session)
    try:
        yield writers, server
    finally:
        for conn in [*writers, server]:
            await conn.close()


async def held(conn: asyncpg.Connection, pid: int) -> list[tuple[int, str]]:
    return [tuple(r) for r in await conn.fetch(HELD, KEY, pid)]


async def notify(writer: asyncpg.Connection, user: str) -> None:
    assert await writer.fetchval("SELECT pgbell.notify('ping', ARRAY[$1::text])", user) == 1


async def test_a_sleeping_server_is_seen_from_every_slot(slots) -> None:
    writers, server = slots
    assert await server.fetchval(Q.fall_asleep) is True
    row = await server.fetchrow(Q.mark_asleep)
    assert (row["asleep"], row["released"]) == (True, True)
    # asleep in every slot (ShareLock on 2, 4, ..., 32), no window left held
    assert await held(writers[0], server.get_server_pid()) == [
        (2 + 2 * s, "ShareLock") for s in range(WAKE_SLOTS)
    ]

    got: asyncio.Queue[str] = asyncio.Queue()
    await server.add_listener(CHANNEL, lambda *args: got.put_nowait(args[3]))
    for slot, writer in enumerate(writers):
        await notify(writer, f"user-{slot}")
        try:
            async with asyncio.timeout(DEFAULT_WAIT):
                await got.get()
        except TimeoutError:
            raise AssertionError(
                f"a writer in slot {slot} sent no NOTIFY to a sleeping server"
            ) from None

    assert await server.fetchval(Q.wake_up) is True
    assert await held(writers[0], server.get_server_pid()) == []


async def test_a_writer_in_any_slot_keeps_the_server_awake(slots) -> None:
    writers, server = slots
    for slot, writer in enumerate(writers):
        async with writer.transaction():
            await notify(writer, f"user-{slot}")
            # the writer holds its slot's window until its transaction ends
            assert await server.fetchval(Q.fall_asleep) is False, f"slot {slot}"
            # and the server let go of the windows it did take
            assert await held(writers[(slot + 1) % WAKE_SLOTS], server.get_server_pid()) == []
    # every writer gone: the server may fall asleep, and wakes up again
    assert await server.fetchval(Q.fall_asleep) is True
    assert (await server.fetchrow(Q.mark_asleep))["asleep"] is True
    assert await server.fetchval(Q.wake_up) is True


async def test_a_probe_in_flight_keeps_the_server_awake_and_it_lets_go(slots) -> None:
    """A writer's probe holds one slot's asleep lock EXCLUSIVE for an
    instant; a server marking itself asleep just then stays awake and keeps
    none of the locks it took."""
    writers, server = slots
    probing = writers[5]
    await probing.execute(f"SELECT pg_advisory_lock({KEY}, {2 + 2 * 5})")
    try:
        assert await server.fetchval(Q.fall_asleep) is True
        row = await server.fetchrow(Q.mark_asleep)
        assert (row["asleep"], row["released"]) == (False, True)
        assert await held(writers[0], server.get_server_pid()) == []
    finally:
        await probing.execute(f"SELECT pg_advisory_unlock({KEY}, {2 + 2 * 5})")
    assert await server.fetchval(Q.fall_asleep) is True
    assert (await server.fetchrow(Q.mark_asleep))["asleep"] is True
