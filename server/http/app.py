"""The app factory: wiring only. Each piece lives in its own module."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import WSCloseCode, web

from pgbell import resources, schema
from pgbell.bus.feed import Feed
from pgbell.bus.hub import Hub
from pgbell.bus.listener import Listener
from pgbell.config import Settings
from pgbell.demo import deals
from pgbell.http import archive, cors, keys, metrics, middleware, openapi, preferences, rest
from pgbell.http.errors import error_middleware
from pgbell.http.headers import install_security_headers
from pgbell.http.snapshots import SnapshotBatcher
from pgbell.http.stats import HttpStats
from pgbell.http.throttle import LoginThrottle
from pgbell.http.ws import websocket_handler
from pgbell.sql import Q
from pgbell.tokens import TokenVerifier

log = logging.getLogger(__name__)

STATE_CHANGES_KEEP_SECONDS = 600


class PooledConnection(asyncpg.Connection):
    """A pool connection that skips asyncpg's reset query on release.

    pgbell keeps no session state on pool connections: no SET but SET LOCAL,
    no LISTEN (the listener has its own connection), no session advisory
    locks, no cursors outside a transaction. asyncpg still rolls back an open
    transaction on release; the reset query (UNLISTEN, RESET ALL, ...) would
    only add a round trip to every request."""

    def get_reset_query(self) -> str:
        return ""


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    app[keys.POOL] = await asyncpg.create_pool(
        settings.database_url,
        min_size=1,
        max_size=settings.db_pool_max,
        command_timeout=30,
        server_settings={"application_name": "pgbell"},
        connection_class=PooledConnection,
        # 0 behind a transaction pooler (PGBELL_DB_POOL_MODE=transaction): a
        # statement prepared on one backend is unknown to the next one
        statement_cache_size=settings.db_statement_cache,
    )
    try:
        app[keys.SCHEMA] = await _check_schema(app[keys.POOL])
    except BaseException:
        app[keys.POOL].terminate()
        raise
    app[keys.SNAPSHOTS] = SnapshotBatcher(
        app[keys.POOL], settings.snapshot_size, settings.resume_max_bytes
    )
    yield
    try:
        # close() waits for every borrowed connection; never wait forever
        await asyncio.wait_for(app[keys.POOL].close(), timeout=10)
    except TimeoutError:
        log.warning("database pool did not close in 10 s; terminating it")
        app[keys.POOL].terminate()


async def _check_schema(pool: asyncpg.Pool) -> schema.Verdict:
    """Refuse a database whose schema is older than this code (SchemaError
    says to run `pgbell migrate`); serve a newer one with a warning."""
    try:
        current = [r["version_num"] for r in await pool.fetch(Q.schema_versions)]
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        current = None
    verdict = schema.check(current)
    for warning in verdict.warnings:
        log.warning(warning)
    return verdict


async def _tokens(app: web.Application) -> AsyncIterator[None]:
    s = app[keys.SETTINGS]
    app[keys.VERIFIER] = TokenVerifier(
        secret=s.jwt_secret or None,
        public_key=s.jwt_public_key or None,
        jwks_url=s.jwt_jwks_url or None,
        audience=s.jwt_audience or None,
        issuer=s.jwt_issuer or None,
        user_claim=s.jwt_user_claim,
    )
    yield
    await app[keys.VERIFIER].close()


async def _fanout(app: web.Application) -> AsyncIterator[None]:
    hub = app[keys.HUB]
    feed = Feed(app[keys.POOL], hub.user_ids)
    await feed.start()
    app[keys.FEED] = feed

    async def deliver(conn: asyncpg.Connection) -> int:
        batch = await feed.poll(conn)
        for frame in batch.frames:
            hub.publish(frame.user_id, frame.text, frame.ids, frame.created_at)
        for user_id, valid_version in batch.revoked.items():
            hub.revoke(user_id, valid_version)
        # busy while rows come, for this server's users or not: a server that
        # fell asleep then would make every writer send NOTIFY
        return batch.seen + len(batch.frames) + len(batch.revoked)

    settings = app[keys.SETTINGS]
    # its own URL: LISTEN needs one session, which a transaction pooler never keeps
    listener = Listener(
        settings.listen_database_url,
        deliver,
        settings.poll_interval,
        awake_interval=settings.wake_interval,
        awake_idle=settings.wake_idle,
    )
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


async def _draining(app: web.Application) -> None:
    """/readyz answers 503 from here on, however the shutdown began."""
    app[keys.DRAINING].set()


async def _close_sockets(app: web.Application) -> None:
    for ws in list(app[keys.SOCKETS]):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(resources.client_dir() / "index.html")


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[
            middleware.http_metrics_middleware,
            middleware.request_id_middleware,
            cors.cors_middleware,
            error_middleware,
            middleware.login_throttle_middleware,
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[keys.SETTINGS] = settings
    app[keys.HUB] = Hub()
    app[keys.SOCKETS] = set()  # each socket's handler removes it (no weak reference each)
    app[keys.DRAINING] = asyncio.Event()
    app[keys.HTTP_STATS] = HttpStats()
    app[keys.LOGIN_THROTTLE] = LoginThrottle(
        settings.login_max_failures, settings.login_window, settings.login_max_failures_per_address
    )
    app.cleanup_ctx.append(middleware.password_checks)
    app.cleanup_ctx.append(_tokens)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_fanout)
    app.on_startup.append(metrics.warn_if_closed)
    app.on_shutdown.append(_draining)
    app.on_shutdown.append(_close_sockets)
    install_security_headers(app)
    app.router.add_routes(rest.routes)
    app.router.add_routes(deals.routes)
    app.router.add_routes(preferences.routes)
    app.router.add_routes(archive.routes)
    app.router.add_get("/ws", websocket_handler)
    app.router.add_get("/metrics", metrics.metrics)
    app.router.add_get("/openapi.json", openapi.serve)
    app.router.add_get("/", index)
    app.router.add_static("/static/", resources.client_dir())
    return app
