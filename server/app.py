"""The app factory: wiring only. Each piece lives in its own module."""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from aiohttp import WSCloseCode, web

from server import api, archive, cors, deals, keys, metrics, openapi, preferences, throttle
from server.config import Settings
from server.errors import error_middleware
from server.feed import Feed
from server.hub import Hub
from server.listener import Listener
from server.sql import Q
from server.ws import websocket_handler

log = logging.getLogger(__name__)

CLIENT_DIR = Path(__file__).resolve().parent.parent / "client_demo"
STATE_CHANGES_KEEP_SECONDS = 600


@web.middleware
async def request_id_middleware(request: web.Request, handler):
    rid = request.headers.get("X-Request-Id", "")
    request[keys.REQUEST_ID] = rid if 0 < len(rid) <= 64 and rid.isprintable() else uuid.uuid4().hex
    response = await handler(request)
    if not response.prepared:
        response.headers["X-Request-Id"] = request[keys.REQUEST_ID]
    return response


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    app[keys.POOL] = await asyncpg.create_pool(
        settings.database_url,
        min_size=1,
        max_size=settings.db_pool_max,
        command_timeout=30,
        server_settings={"application_name": "pgbell"},
    )
    yield
    try:
        # close() waits for every borrowed connection; never wait forever
        await asyncio.wait_for(app[keys.POOL].close(), timeout=10)
    except TimeoutError:
        log.warning("database pool did not close in 10 s; terminating it")
        app[keys.POOL].terminate()


async def _fanout(app: web.Application) -> AsyncIterator[None]:
    hub = app[keys.HUB]
    feed = Feed(app[keys.POOL], hub.user_ids)
    await feed.start()
    app[keys.FEED] = feed

    async def deliver() -> None:
        for frame in await feed.poll():
            hub.publish(frame.user_id, frame.text, frame.ids, frame.created_at)

    listener = Listener(app[keys.SETTINGS].database_url, deliver, app[keys.SETTINGS].poll_interval)
    app[keys.LISTENER] = listener
    listener.start()
    pruner = asyncio.get_running_loop().create_task(_prune_state_changes(app[keys.POOL]))
    yield
    pruner.cancel()
    await listener.stop()


async def _prune_state_changes(pool: asyncpg.Pool) -> None:
    """Read/archive events are only needed until every server has polled."""
    while True:
        await asyncio.sleep(60)
        try:
            await pool.execute(Q.prune_state_changes, float(STATE_CHANGES_KEEP_SECONDS))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            log.warning("pruning state_changes failed", extra={"error": repr(e)})


async def _close_sockets(app: web.Application) -> None:
    for ws in list(app[keys.SOCKETS]):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(CLIENT_DIR / "index.html")


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[
            metrics.http_metrics_middleware,
            request_id_middleware,
            cors.cors_middleware,
            error_middleware,
            throttle.login_throttle_middleware,
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[keys.SETTINGS] = settings
    app[keys.HUB] = Hub()
    app[keys.SOCKETS] = weakref.WeakSet()
    app[keys.HTTP_STATS] = metrics.HttpStats()
    app[keys.LOGIN_THROTTLE] = throttle.LoginThrottle(
        settings.login_max_failures, settings.login_window
    )
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_fanout)
    app.on_shutdown.append(_close_sockets)
    app.router.add_routes(api.routes)
    app.router.add_routes(deals.routes)
    app.router.add_routes(preferences.routes)
    app.router.add_routes(archive.routes)
    app.router.add_get("/ws", websocket_handler)
    app.router.add_get("/metrics", metrics.metrics)
    app.router.add_get("/openapi.json", openapi.serve)
    app.router.add_get("/", index)
    if CLIENT_DIR.is_dir():
        app.router.add_static("/static/", CLIENT_DIR)
    return app
