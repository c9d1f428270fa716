"""REST for the demo domain: deals and payments in the public schema.

Handlers only INSERT: the notifications come from the tables' triggers,
exactly as they do for a psql INSERT. The demo belongs to pgbell's own users
(standalone mode): a caller must be one, and the routes answer 404 on a
database without the demo (`pgbell migrate --demo` installs it).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import asyncpg
from aiohttp import web

from pgbell import resources
from pgbell.bus import wire
from pgbell.http import keys, validate
from pgbell.http.auth import OWN_TOKEN_VERSION, authenticate
from pgbell.http.errors import ApiError, invalid, not_found
from pgbell.sql import Q

routes = web.RouteTableDef()
MAX_AMOUNT = 999_999_999_999.99  # numeric(14, 2)
VARY_PAGE_OR_JSON = {"Vary": "Accept, Authorization"}


def _amount(value: Decimal) -> float:
    return float(value)


def deal_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "title": row["title"],
        "amount": _amount(row["amount"]),
        "owner_id": row["owner_id"],
        "created_by": row["created_by"],
        "created_at": wire.rfc3339(row["created_at"]),
    }


def payment_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "deal_id": row["deal_id"],
        "amount": _amount(row["amount"]),
        "created_by": row["created_by"],
        "created_at": wire.rfc3339(row["created_at"]),
    }


async def _demo_user(request: web.Request) -> int:
    """The caller as one of pgbell's own users, on a database with the demo."""
    if not request.app[keys.SCHEMA].demo:
        raise ApiError(
            404, "not_found", "the demo is not installed here (pgbell migrate --demo installs it)"
        )
    caller = await authenticate(request)
    uid = caller.user_id
    if not (uid.isascii() and uid.isdigit() and 0 < int(uid) <= validate.MAX_ID):
        raise ApiError(403, "forbidden", "the demo's deals are for pgbell's own users")
    # a token pgbell's login issued was just checked against the user's row;
    # any other token must name an existing user
    if OWN_TOKEN_VERSION not in caller.claims and not (
        await request.app[keys.POOL].fetchval(Q.user_exists, int(uid))
    ):
        raise ApiError(403, "forbidden", "the demo's deals are for pgbell's own users")
    return int(uid)


async def _fk_failure(request: web.Request, caller: int, otherwise: ApiError) -> ApiError:
    """After a foreign-key failure: the caller is not (or no longer) one of
    pgbell's users, else `otherwise` (the owner or the deal is unknown)."""
    if await request.app[keys.POOL].fetchval(Q.user_exists, caller):
        return otherwise
    return ApiError(403, "forbidden", "the demo's deals are for pgbell's own users")


@routes.post("/deals")
async def create_deal(request: web.Request) -> web.Response:
    caller = await _demo_user(request)
    body = await validate.json_object(request)
    title = validate.string(body, "title", 1, 200)
    amount = validate.number(body, "amount", minimum=0, exclusive=False, maximum=MAX_AMOUNT)
    owner_id = validate.optional_id(body, "owner_id") or caller
    try:
        row = await request.app[keys.POOL].fetchrow(
            Q.insert_deal, title, Decimal(f"{amount:.2f}"), owner_id, caller
        )
    except asyncpg.ForeignKeyViolationError:
        raise await _fk_failure(request, caller, invalid("owner_id", "no such user")) from None
    return web.json_response({"deal": deal_json(row)}, status=201)


@routes.get(r"/deals/{id}")
async def get_deal(request: web.Request) -> web.StreamResponse:
    # A browser following a notification's action_url gets the client page,
    # which routes itself; API clients send a token and get JSON.
    # One URL, two answers: caches must key on what chose between them.
    if "Authorization" not in request.headers and "text/html" in request.headers.get("Accept", ""):
        page = web.FileResponse(resources.client_dir() / "index.html")
        page.headers.update(VARY_PAGE_OR_JSON)
        page.headers["Cache-Control"] = "no-cache"
        return page
    await _demo_user(request)
    row = await request.app[keys.POOL].fetchrow(Q.get_deal, validate.path_id(request))
    if row is None:
        raise not_found("deal")
    return web.json_response({"deal": deal_json(row)}, headers=VARY_PAGE_OR_JSON)


@routes.post(r"/deals/{id}/payments")
async def create_payment(request: web.Request) -> web.Response:
    caller = await _demo_user(request)
    deal_id = validate.path_id(request)
    body = await validate.json_object(request)
    amount = validate.number(body, "amount", minimum=0, exclusive=True, maximum=MAX_AMOUNT)
    if round(amount, 2) <= 0:
        raise invalid("amount", "must be at least 0.01")
    try:
        row = await request.app[keys.POOL].fetchrow(
            Q.insert_payment, deal_id, Decimal(f"{amount:.2f}"), caller
        )
    except asyncpg.ForeignKeyViolationError:
        # created_by is the caller; otherwise the deal went away meanwhile
        raise await _fk_failure(request, caller, not_found("deal")) from None
    if row is None:
        raise not_found("deal")
    return web.json_response({"payment": payment_json(row)}, status=201)
