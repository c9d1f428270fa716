"""Clearing the list: archived notifications leave the list and the unread
count, and every socket of the user hears it (an `archived` frame, sent by
the same trigger that sends `read` frames, whoever archives)."""

from __future__ import annotations

from aiohttp import web

from pgbell.http import keys
from pgbell.http.auth import authenticate
from pgbell.http.rest import change_one
from pgbell.sql import Q

routes = web.RouteTableDef()


@routes.post(r"/notifications/{id}/archive")
async def archive_one(request: web.Request) -> web.Response:
    return await change_one(request, Q.archive_one)


@routes.post("/notifications/archive-read")
async def archive_read(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    async with request.app[keys.POOL].acquire() as conn:
        async with conn.transaction():
            status = await conn.execute(Q.archive_read, caller.user_id)
            count = await conn.fetchval(Q.unread_count, caller.user_id)
    return web.json_response({"archived": int(status.split()[-1]), "unread_count": count})
