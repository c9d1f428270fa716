"""REST: login, the caller's notifications and read state, health."""

from __future__ import annotations

import logging

from aiohttp import web

from pgbell.bus import wire
from pgbell.http import keys, validate
from pgbell.http.auth import OWN_TOKEN_VERSION, authenticate
from pgbell.http.errors import ApiError, not_found
from pgbell.http.middleware import rate_limited
from pgbell.passwords import ChecksBusy
from pgbell.sql import Q
from pgbell.tokens import issue_token

log = logging.getLogger(__name__)
routes = web.RouteTableDef()


def _busy() -> web.Response:
    # one second: a check takes a fraction of that, so a slot is free by then
    return rate_limited("too many logins are being checked; try again in a moment", 1)


@routes.post("/auth/login")
async def login(request: web.Request) -> web.Response:
    """pgbell's own login (standalone mode and the demo). An application that
    issues its own tokens does not need it."""
    settings = request.app[keys.SETTINGS]
    if not settings.jwt_secret:
        raise ApiError(
            404,
            "not_found",
            "pgbell's own login is off: this server checks the application's tokens"
            " (PGBELL_JWT_SECRET is not set)",
        )
    body = await validate.json_object(request)
    username = validate.string(body, "username", 1, 150)
    password = validate.string(body, "password", 1, 1024)
    checks = request.app[keys.PASSWORD_CHECKS]
    try:
        checks.ensure_room()  # before the query too: a refused login costs nothing
        row = await request.app[keys.POOL].fetchrow(Q.user_by_name, username)
        # verify even for an unknown user: same answer, same time
        ok = await checks.verify(row["password_hash"] if row else None, password)
    except ChecksBusy:
        return _busy()
    if not ok or row is None:
        raise ApiError(401, "invalid_credentials", "wrong username or password")
    roles = list(row["roles"])
    token = issue_token(
        settings.jwt_secret,
        settings.jwt_ttl,
        str(row["id"]),
        audience=settings.jwt_audience or None,
        issuer=settings.jwt_issuer or None,
        user_claim=settings.jwt_user_claim,
        extra={"name": row["username"], "roles": roles, OWN_TOKEN_VERSION: row["token_version"]},
    )
    request[keys.USER_ID] = str(row["id"])
    return web.json_response(
        {
            "token": token,
            "token_type": "Bearer",
            "expires_in": settings.jwt_ttl,
            "user": {"id": row["id"], "username": row["username"], "roles": roles},
        }
    )


@routes.get("/notifications")
async def list_notifications(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    unread = validate.query_bool(request, "unread")
    limit = validate.query_int(request, "limit", 20, 1, 100)
    before = validate.query_int(request, "before", None, 1, validate.MAX_ID)
    pool = request.app[keys.POOL]
    async with pool.acquire() as conn:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            rows = await conn.fetch(Q.list_notifications, caller.user_id, unread, before, limit)
            count = await conn.fetchval(Q.unread_count, caller.user_id)
    return web.json_response(
        {
            "items": [wire.notification(r) for r in rows],
            "unread_count": count,
            "next_before": rows[-1]["id"] if len(rows) == limit else None,
        }
    )


@routes.get("/notifications/unread-count")
async def unread_count(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    count = await request.app[keys.POOL].fetchval(Q.unread_count, caller.user_id)
    return web.json_response({"unread_count": count})


@routes.post("/notifications/read-all")
async def read_all(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    async with request.app[keys.POOL].acquire() as conn:
        async with conn.transaction():
            status = await conn.execute(Q.mark_all_read, caller.user_id)
            count = await conn.fetchval(Q.unread_count, caller.user_id)
    return web.json_response({"updated": int(status.split()[-1]), "unread_count": count})


async def change_one(request: web.Request, update: str) -> web.Response:
    """Run `update` ($1 id, $2 user id) on one of the caller's notifications
    and answer {"notification", "unread_count"}."""
    caller = await authenticate(request)
    note_id = validate.path_id(request)
    async with request.app[keys.POOL].acquire() as conn:
        async with conn.transaction():
            await conn.execute(update, note_id, caller.user_id)
            row = await conn.fetchrow(Q.get_notification, note_id, caller.user_id)
            if row is None:
                # another user's id answers exactly like an unknown one
                raise not_found("notification")
            count = await conn.fetchval(Q.unread_count, caller.user_id)
    return web.json_response({"notification": wire.notification(row), "unread_count": count})


@routes.post(r"/notifications/{id}/read")
async def read_one(request: web.Request) -> web.Response:
    return await change_one(request, Q.mark_read)


async def _database_answers(request: web.Request) -> bool:
    try:
        await request.app[keys.POOL].fetchval("SELECT 1", timeout=2)
        return True
    except Exception:  # any failure to reach the database is a 503, not a 500
        return False


def _unavailable(body: dict, message: str) -> web.Response:
    body["status"] = "unavailable"
    body["error"] = {"code": "unavailable", "message": message}
    return web.json_response(body, status=503)


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Readiness without the shutdown: what /healthz has always answered."""
    listener = request.app[keys.LISTENER]
    database = await _database_answers(request)
    body: dict = {"status": "ok", "database": database, "listener": listener.connected}
    if not (database and listener.connected):
        return _unavailable(body, "database or listener not connected")
    return web.json_response(body)


@routes.get("/livez")
async def livez(request: web.Request) -> web.Response:
    """Liveness: 200 while the process runs its event loop. It asks nothing of
    the database, so a database outage never gets healthy processes restarted."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Readiness: 200 when the database answers and the listener is connected;
    503 when not, and from the moment the server begins to shut down (before
    it closes anything), so that a load balancer stops sending it clients."""
    draining = request.app[keys.DRAINING].is_set()
    listener = request.app[keys.LISTENER]
    database = await _database_answers(request)
    body: dict = {
        "status": "ok",
        "database": database,
        "listener": listener.connected,
        "draining": draining,
    }
    if draining:
        return _unavailable(body, "this server is shutting down")
    if not (database and listener.connected):
        return _unavailable(body, "database or listener not connected")
    return web.json_response(body)
