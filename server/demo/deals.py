"""REST for the demo domain: deals and payments in the public schema.

Handlers only INSERT: the notifications come from the tables' triggers,
exactly as they do for a psql INSERT. The demo belongs to pgbell's own users
(standalone mode): a caller must be one, and the routes answer 404 on a
database without the demo (`pgbell migrate --demo` installs it).

Who may do what (a manager is a user whose pgbell.users.roles include
'manager' at the time of the request, whatever the token says):
- read a deal: its owner, its creator, managers;
- record a payment: its owner and managers (a payment is an act on the
  owner's account, not a look at what one wrote);
- create a deal for another owner: managers.
Anyone else learns nothing: another user's deal answers 404 exactly as an
unknown id, and a forbidden owner_id answers 403 whether or not it exists.
Each rule is checked by the SQL statement that acts (queries.sql), so a role
taken away between a check and the write cannot slip through.
"""

from __future__ import annotations

import math
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import asyncpg
from aiohttp import web

from pgbell import resources
from pgbell.bus import wire
from pgbell.http import keys, validate
from pgbell.http.auth import OWN_TOKEN_VERSION, authenticate
from pgbell.http.errors import ApiError, error_response, invalid, not_found
from pgbell.sql import Q

routes = web.RouteTableDef()
MAX_AMOUNT = 999_999_999_999.99  # numeric(14, 2)
VARY_PAGE_OR_JSON = {"Vary": "Accept, Authorization"}
MAX_LIMITED_USERS = 100_000  # least recently seen users are forgotten past this


class CreationLimit:
    """At most `per_minute` deals per user at once, the allowance refilled
    evenly over a minute (a token bucket per user).

    Per process and in memory: every server of a deployment counts on its
    own. One pair of floats per user who tried to create a deal within the
    last minute: a full bucket is forgotten, and past MAX_LIMITED_USERS the
    least recently seen user is forgotten too (which gives that user a full
    bucket again)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0  # places regained per second
        self._clock = clock
        # user id -> (places left, when counted), least recently seen first
        self._buckets: OrderedDict[int, tuple[float, float]] = OrderedDict()
        self.rejected = 0

    def __len__(self) -> int:
        """Users remembered now (at most MAX_LIMITED_USERS)."""
        return len(self._buckets)

    def _left(self, bucket: tuple[float, float], now: float) -> float:
        left, then = bucket
        return min(self._capacity, left + (now - then) * self._rate)

    def take(self, user: int) -> float | None:
        """Takes one place for `user` now, or none: None when taken, else the
        seconds until a place is free. Synchronous on purpose: when every
        request takes its place before its first await, concurrent requests
        of one user cannot overshoot the limit."""
        now = self._clock()
        bucket = self._buckets.get(user)
        left = self._capacity if bucket is None else self._left(bucket, now)
        if left < 1.0:
            self.rejected += 1
            return (1.0 - left) / self._rate
        self._buckets[user] = (left - 1.0, now)
        self._buckets.move_to_end(user)
        while self._buckets:
            oldest = next(iter(self._buckets))
            full = self._left(self._buckets[oldest], now) >= self._capacity
            if not full and len(self._buckets) <= MAX_LIMITED_USERS:
                break
            del self._buckets[oldest]
        return None


# One limit per application (a process may serve several), made on first
# use from its settings and gone with it.
_limits: weakref.WeakKeyDictionary[web.Application, CreationLimit] = weakref.WeakKeyDictionary()


def creation_limit(app: web.Application) -> CreationLimit:
    """The deal creation limit of `app` (PGBELL_DEALS_PER_MINUTE)."""
    limit = _limits.get(app)
    if limit is None:
        limit = _limits[app] = CreationLimit(app[keys.SETTINGS].deals_per_minute)
    return limit


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
    # Every attempt takes a place, before the body is even read: no await
    # lies between the check and the take.
    limit = creation_limit(request.app)
    wait = limit.take(caller)
    if wait is not None:
        response = error_response(
            429,
            "rate_limited",
            f"at most {limit.per_minute} deals a minute per user; try again shortly",
        )
        response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return response
    body = await validate.json_object(request)
    title = validate.string(body, "title", 1, 200)
    amount = validate.number(body, "amount", minimum=0, exclusive=False, maximum=MAX_AMOUNT)
    owner_id = validate.optional_id(body, "owner_id") or caller
    try:
        row = await request.app[keys.POOL].fetchrow(
            Q.insert_deal, title, Decimal(f"{amount:.2f}"), owner_id, caller
        )
    except asyncpg.ForeignKeyViolationError:
        # an unknown owner named by a manager (no one else's INSERT gets this
        # far), or the caller was deleted meanwhile
        raise await _fk_failure(request, caller, invalid("owner_id", "no such user")) from None
    if row is None:
        # the same answer whether or not owner_id names a user
        raise ApiError(403, "forbidden", "owner_id: only managers create deals for other users")
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
    caller = await _demo_user(request)
    row = await request.app[keys.POOL].fetchrow(Q.get_deal, validate.path_id(request), caller)
    if row is None:
        # unknown, or not the caller's to see: one answer for both
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
    pool = request.app[keys.POOL]
    try:
        row = await pool.fetchrow(Q.insert_payment, deal_id, Decimal(f"{amount:.2f}"), caller)
    except asyncpg.ForeignKeyViolationError:
        # created_by is the caller; otherwise the deal went away meanwhile
        raise await _fk_failure(request, caller, not_found("deal")) from None
    if row is None:
        # A deal the caller may read is no secret to it (its creator, no
        # longer a manager): say why. Any other is unknown, as far as it knows.
        if await pool.fetchrow(Q.get_deal, deal_id, caller) is not None:
            raise ApiError(403, "forbidden", "only the deal's owner and managers record payments")
        raise not_found("deal")
    return web.json_response({"payment": payment_json(row)}, status=201)
