"""What an open socket keeps on the server while it is held: the socket's
life must not hold on to what only its start needed (docs/benchmarks.md,
"Fan-out: 10,000 sockets")."""

from __future__ import annotations

import gc
import json
import weakref

from pgbell.http import keys
from tests.contract_client import frame, mint, open_socket, snapshot
from tests.support import add_user, insert_deal


class _Frame(dict):
    """A snapshot frame that can be watched through a weak reference."""


async def test_an_open_socket_lets_its_snapshot_go_once_sent(server, database_url):
    batcher = server.pgbell_app[keys.SNAPSHOTS]
    answered: list[weakref.ref] = []
    read = batcher.get

    async def get(user_id: str, since: int | None) -> dict:
        got = _Frame(await read(user_id, since))
        answered.append(weakref.ref(got))
        return got

    batcher.get = get
    uid = add_user(database_url, "ann")
    insert_deal(database_url, "Acme", uid)
    sockets = []
    for since in (None, 0):  # a first connect, and a resume with `missed`
        ws = await open_socket(server.ws_base, mint(uid), since=since)
        snap = await snapshot(ws, f"with since={since}")
        assert len(snap["notifications"]) == 1
        # a ping answered: the server is past the snapshot, reading the socket
        await ws.send(json.dumps({"type": "ping"}))
        await frame(ws, "pong", f"with since={since}")
        sockets.append(ws)
    gc.collect()
    assert len(answered) == 2
    assert [ref() is None for ref in answered] == [True, True], "an open socket keeps its snapshot"
    for ws in sockets:
        await ws.close()
