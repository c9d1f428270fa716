"""GET/PUT /preferences: what a user wants to hear.

Preferences are keyed by recipient: the caller's user id, whatever the
application calls it. The document is {"muted", "min_priority", "kinds":
{kind: {"muted", "min_priority"}}}; a kind's min_priority of null inherits the global one.
PUT replaces it whole (send back what GET gave, changed);
a kind left out returns to the default. pgbell.notify() applies it inside
the database, whoever writes; urgent notifications bypass every mute.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from pgbell.http import keys, validate
from pgbell.http.auth import authenticate
from pgbell.http.errors import invalid
from pgbell.sql import Q

routes = web.RouteTableDef()
PRIORITIES = ("low", "normal", "high", "urgent")


async def _document(conn, user_id: int) -> dict[str, Any]:
    glob = await conn.fetchrow(Q.global_preferences, user_id)
    kinds = await conn.fetch(Q.kind_preferences, user_id)
    return {
        "muted": glob["muted"] if glob else False,
        "min_priority": glob["min_priority"] if glob else "low",
        "kinds": {
            r["kind"]: {
                "muted": r["muted"],
                "min_priority": r["min_priority"],
                "default_priority": r["default_priority"],
                "description": r["description"],
            }
            for r in kinds
        },
    }


def _setting(obj: dict[str, Any], where: str, inherit: bool) -> tuple[bool, str | None]:
    muted = obj.get("muted", False)
    if not isinstance(muted, bool):
        raise invalid(f"{where}muted", "must be true or false")
    floor = obj.get("min_priority", None if inherit else "low")
    if not (floor in PRIORITIES or (inherit and floor is None)):
        allowed = ", ".join(PRIORITIES) + (" or null (inherit)" if inherit else "")
        raise invalid(f"{where}min_priority", f"must be one of {allowed}")
    return muted, floor


@routes.get("/preferences")
async def get_preferences(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    async with request.app[keys.POOL].acquire() as conn:
        return web.json_response(await _document(conn, caller.user_id))


@routes.put("/preferences")
async def put_preferences(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    body = await validate.json_object(request)
    muted, floor = _setting(body, "", inherit=False)
    kinds = body.get("kinds", {})
    if not isinstance(kinds, dict):
        raise invalid("kinds", "must be an object of kind -> {muted, min_priority}")
    settings: list[tuple[str, bool, str | None]] = []
    for kind, value in kinds.items():
        if not validate.storable(kind):
            raise invalid("kinds", "a kind must be valid Unicode text without NUL characters")
        if not isinstance(value, dict):
            raise invalid(f"kinds.{kind[:64]}", "must be an object {muted, min_priority}")
        settings.append((kind, *_setting(value, f"kinds.{kind[:64]}.", inherit=True)))
    async with request.app[keys.POOL].acquire() as conn:
        async with conn.transaction():
            known = {r["kind"] for r in await conn.fetch(Q.known_kinds, list(kinds))}
            unknown = sorted(set(kinds) - known)
            if unknown:
                raise invalid("kinds", f"unknown kind {unknown[0][:64]!r} (see GET /preferences)")
            try:
                await conn.execute(Q.upsert_global_preferences, caller.user_id, muted, floor)
                await conn.execute(Q.clear_kind_preferences, caller.user_id)
                for kind, kind_muted, kind_floor in settings:
                    if kind_muted or kind_floor is not None:
                        await conn.execute(
                            Q.insert_kind_preference, caller.user_id, kind, kind_muted, kind_floor
                        )
            except asyncpg.ForeignKeyViolationError:
                # a kind's template was deleted meanwhile
                raise invalid("kinds", "unknown kind (see GET /preferences)") from None
            return web.json_response(await _document(conn, caller.user_id))
