"""The floor of the fan-out benchmark: the least a Python WebSocket server
on aiohttp does for the same clients, with no database and no auth.

GET /ws sends a snapshot-shaped frame on connect and then only reads;
POST /broadcast awaits send_str of one pre-encoded, notification-shaped
frame on every open socket and answers how many it sent to. pgbell's
figures in bench/fanout.py are read beside this one's, measured by the
same clients in the same run.

    .venv/bin/python bench/floor.py --port 8099 [--compress]
"""

from __future__ import annotations

import argparse
import json
import resource

from aiohttp import web

# pgbell serve's listen backlog (pgbell.ops.serving.LISTEN_BACKLOG), so that
# a reconnect storm meets the same kernel queue; not imported, to keep the
# floor free of pgbell
LISTEN_BACKLOG = 4096


def dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)  # as pgbell's wire


SNAPSHOT = dumps({"type": "snapshot", "unread_count": 0, "notifications": []})

SOCKETS = web.AppKey("sockets", set)
COMPRESS = web.AppKey("compress", bool)


def notification_frame(seq: int) -> str:
    """A frame of the size and shape of pgbell's `notification` frame."""
    return dumps(
        {
            "type": "notification",
            "notification": {
                "id": seq,
                "kind": "deal_created",
                "title": "New deal: Fan-out",
                "body": "Fan-out, 1.00",
                "priority": "normal",
                "action_url": "/deals/1",
                "data": {"deal_id": seq, "title": "Fan-out", "amount": 1},
                "created_at": "2026-11-25T20:00:00.000000+00:00",
                "read_at": None,
            },
            "unread_count": 1,
        }
    )


async def websocket(request: web.Request) -> web.WebSocketResponse:
    # the same heartbeat as pgbell's default, so both answer the same pongs
    ws = web.WebSocketResponse(heartbeat=30.0, compress=request.app[COMPRESS])
    await ws.prepare(request)
    await ws.send_str(SNAPSHOT)
    sockets = request.app[SOCKETS]
    sockets.add(ws)
    try:
        async for _ in ws:
            pass
    finally:
        sockets.discard(ws)
    return ws


async def broadcast(request: web.Request) -> web.Response:
    seq = int(request.query.get("seq", "1"))
    frame = notification_frame(seq)  # encoded once, sent to every socket
    sent = 0
    for ws in list(request.app[SOCKETS]):
        if not ws.closed:
            await ws.send_str(frame)
            sent += 1
    return web.json_response({"sent": sent})


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(compress: bool) -> web.Application:
    app = web.Application()
    app[SOCKETS] = set()
    app[COMPRESS] = compress
    app.router.add_get("/ws", websocket)
    app.router.add_post("/broadcast", broadcast)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    p = argparse.ArgumentParser(prog="bench/floor.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--compress", action="store_true", help="negotiate permessage-deflate")
    a = p.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    web.run_app(
        create_app(a.compress),
        host=a.host,
        port=a.port,
        access_log=None,
        print=None,
        backlog=LISTEN_BACKLOG,
    )


if __name__ == "__main__":
    main()
