"""Who is calling: the one place that reads a bearer token, for REST and /ws.

Tokens are checked by pgbell.tokens against the configured key sources
(PROTOCOL.md v2: an HS256 secret, a PEM public key, a JWKS). A token that
pgbell's own login issued also carries the user's token version: it is
refused once the password changed or the user was deleted (one primary-key
lookup). Tokens the application issued are the application's to revoke.
"""

from __future__ import annotations

from aiohttp import web

from pgbell.http import keys
from pgbell.http.errors import ApiError
from pgbell.sql import Q
from pgbell.tokens import Identity, TokenError

# The claim pgbell's login adds: the user's token_version at issue time.
OWN_TOKEN_VERSION = "pgbell_tv"
MAX_USER_ID = 2**63 - 1


def bearer(request: web.Request) -> str | None:
    """The token of `Authorization: Bearer <token>`; the scheme is
    case-insensitive (RFC 9110)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def identify(request: web.Request, token: str) -> Identity:
    """Verify `token`; raises TokenError. Records the caller for the access log."""
    identity = await request.app[keys.VERIFIER].verify(token)
    if OWN_TOKEN_VERSION in identity.claims:
        await _still_valid(request, identity)
    request[keys.USER_ID] = identity.user_id
    return identity


async def _still_valid(request: web.Request, identity: Identity) -> None:
    version = identity.claims[OWN_TOKEN_VERSION]
    uid = identity.user_id
    if not (uid.isascii() and uid.isdigit() and 0 < int(uid) <= MAX_USER_ID) or not (
        isinstance(version, int) and not isinstance(version, bool)
    ):
        raise TokenError("unauthorized", "the token's claims are malformed")
    current = await request.app[keys.POOL].fetchval(Q.token_version, int(uid))
    if current is None:
        raise TokenError("unauthorized", "the token's user no longer exists; log in again")
    if current != version:
        raise TokenError("unauthorized", "the token was revoked (password changed); log in again")


async def authenticate(request: web.Request) -> Identity:
    """For REST handlers: the caller, or a 401 in the error shape."""
    token = bearer(request)
    if token is None:
        raise ApiError(401, "unauthorized", "Authorization: Bearer <token> is required")
    try:
        return await identify(request, token)
    except TokenError as e:
        raise ApiError(401, e.code, e.message) from None
