"""permessage-deflate is off unless PGBELL_WS_COMPRESSION turns it on: a
client that offers it, as every browser does, gets a plain socket by
default and a compressed one when the setting is on; frames arrive either
way. Checked from the handshake response an independent client sees."""

from __future__ import annotations

import json

import pytest

from pgbell.config import ConfigError, Settings
from pgbell.http import keys
from tests.contract_client import closed, frame, mint, open_socket, snapshot
from tests.support import add_user, insert_deal, server_env

URL = "postgresql://pgbell@127.0.0.1:5432/pgbell"


async def _negotiated(server, database_url: str) -> str | None:
    """Open a socket offering permessage-deflate (the `websockets` default),
    check that the snapshot and a live notification arrive, and return the
    Sec-WebSocket-Extensions header of the handshake response."""
    uid = add_user(database_url, "ann")
    ws = await open_socket(server.ws_base, mint(uid))
    try:
        offered = ws.request.headers.get("Sec-WebSocket-Extensions", "")
        assert "permessage-deflate" in offered, f"the client offered no compression: {offered!r}"
        await snapshot(ws, "on a socket that offered permessage-deflate")
        insert_deal(database_url, "Acme", uid)
        got = await frame(ws, "notification", "after a psql INSERT")
        assert got["notification"]["data"]["deal_id"]
        return ws.response.headers.get("Sec-WebSocket-Extensions")
    finally:
        await ws.close()


async def test_compression_is_declined_by_default(server, database_url):
    assert await _negotiated(server, database_url) is None


async def test_compression_is_negotiated_when_turned_on(start_server, database_url):
    server = await start_server(PGBELL_WS_COMPRESSION="on")
    negotiated = await _negotiated(server, database_url)
    assert negotiated is not None and negotiated.startswith("permessage-deflate"), negotiated


async def _send_frame_of(server, uid: int, size: int, offer: str | None):
    """Send a ping frame of exactly `size` bytes on a socket that offers
    permessage-deflate (offer "deflate") or not (None)."""
    ws = await open_socket(server.ws_base, mint(uid), compression=offer)
    await snapshot(ws, "before a large frame")
    text = json.dumps({"type": "ping", "padding": ""})
    await ws.send(json.dumps({"type": "ping", "padding": "x" * (size - len(text))}))
    return ws


@pytest.mark.parametrize(
    ("compression", "offer"), [("off", "deflate"), ("on", "deflate"), ("on", None)]
)
async def test_the_frame_limit_is_exact_whether_frames_are_compressed_or_not(
    start_server, database_url, compression, offer
):
    server = await start_server(PGBELL_WS_COMPRESSION=compression)
    limit = server.pgbell_app[keys.SETTINGS].ws_max_frame_bytes
    uid = add_user(database_url, "ann")
    how = f"compression {compression}, the client offering {offer}"
    ws = await _send_frame_of(server, uid, limit, offer)
    assert await frame(ws, "pong", f"for a frame of exactly the limit, {how}")
    await ws.close()
    ws = await _send_frame_of(server, uid, limit + 1, offer)
    code, _ = await closed(ws, f"after a frame one byte over the limit, {how}")
    assert code == 1009


@pytest.mark.parametrize(
    ("raw", "want"),
    [("", False), ("off", False), ("0", False), ("No", False), ("on", True), ("TRUE", True)],
)
def test_compression_setting_reads_on_and_off(raw, want):
    env = server_env(URL, PGBELL_WS_COMPRESSION=raw)
    assert Settings.from_env(env).ws_compression is want


def test_a_bad_compression_setting_names_the_variable():
    with pytest.raises(ConfigError, match="PGBELL_WS_COMPRESSION must be on or off"):
        Settings.from_env(server_env(URL, PGBELL_WS_COMPRESSION="deflate"))
