"""Request parsing: JSON bodies, fields and query parameters, each failure an
ApiError whose message names the field (400 for a body that is not JSON,
422 for a field of the wrong type or out of range)."""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

from pgbell.http.errors import ApiError, invalid

MAX_ID = 2**63 - 1


class NestedTooDeeply(ValueError):
    """JSON nested deeper than the parser follows."""


def parse_json(raw: bytes | str) -> Any:
    """The JSON value `raw` spells. Every way parsing can fail raises a
    ValueError and nothing else: not UTF-8 (UnicodeDecodeError), not JSON, or
    nested deeper than the parser follows (NestedTooDeeply: json.loads raises
    RecursionError there, which a caller catching ValueError would let
    through as a 500)."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise NestedTooDeeply("JSON nested too deeply") from None


async def json_object(request: web.Request) -> dict[str, Any]:
    # request.read() enforces client_max_size and raises 413 past it
    raw = await request.read()
    if not raw:
        raise ApiError(400, "invalid_request", "body: a JSON object is required")
    try:
        body = parse_json(raw)
    except NestedTooDeeply:
        raise ApiError(400, "invalid_request", "body: JSON nested too deeply") from None
    except ValueError:
        raise ApiError(400, "invalid_request", "body: not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "body: must be a JSON object")
    return body


def storable(value: str) -> bool:
    """PostgreSQL text holds neither NUL nor the lone surrogates that JSON's
    \\u escapes can spell; such a string must be refused, not sent to the
    database (where it would fail as a 500)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def string(body: dict[str, Any], name: str, lo: int, hi: int) -> str:
    if name not in body:
        raise invalid(name, "is required")
    value = body[name]
    if not isinstance(value, str):
        raise invalid(name, "must be a string")
    if not lo <= len(value) <= hi:
        raise invalid(name, f"must be {lo} to {hi} characters long")
    if not storable(value):
        raise invalid(name, "must be valid Unicode text without NUL characters")
    return value


def number(
    body: dict[str, Any], name: str, *, minimum: float, exclusive: bool, maximum: float
) -> float:
    if name not in body:
        raise invalid(name, "is required")
    value = body[name]
    # math.isfinite() on an int too large for a float raises: only ask floats
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (isinstance(value, float) and not math.isfinite(value))
    ):
        raise invalid(name, "must be a number")
    if value < minimum or (exclusive and value == minimum):
        raise invalid(name, f"must be {'>' if exclusive else '>='} {minimum:g}")
    if value > maximum:
        raise invalid(name, f"must be at most {maximum:,.2f}")
    return value


def optional_id(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise invalid(name, "must be a positive integer id")
    return value


def digits(raw: str) -> bool:
    """ASCII 0-9 only: str.isdigit() also accepts '²' and '١', which int()
    refuses or reads as another number."""
    return raw.isascii() and raw.isdigit()


def path_id(request: web.Request, name: str = "id") -> int:
    raw = request.match_info[name]
    if not digits(raw) or len(raw) > 18 or int(raw) == 0:
        raise invalid(name, "must be a positive integer id", status=400)
    return int(raw)


def query_int(request: web.Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not digits(raw) or len(raw) > 18 or not lo <= int(raw) <= hi:
        raise invalid(name, f"must be an integer from {lo} to {hi}", status=400)
    return int(raw)


def query_bool(request: web.Request, name: str) -> bool | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise invalid(name, "must be true or false", status=400)
