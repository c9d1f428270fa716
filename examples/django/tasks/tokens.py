"""The token the browser hands to pgbell: an HS256 JWT signed with the
secret pgbell is configured with (PGBELL_JWT_SECRET), so pgbell trusts this
application's login and never sees a password."""

from __future__ import annotations

import time

import jwt
from django.conf import settings


def issue(user) -> dict:
    """The answer of GET /pgbell/token for `user`: the token, its lifetime in
    seconds and the user as the page shows it."""
    claims = {
        # pgbell's recipient id: the application's user id, as text. The
        # trigger passes assignee_id::text, so the two must be spelled alike.
        "sub": str(user.pk),
        # No iat: pgbell checks it to the second, and a server whose clock
        # runs a little behind this one's would refuse a fresh token.
        "exp": int(time.time()) + settings.PGBELL_JWT_TTL,
    }
    # pgbell checks aud / iss only when it is configured with them; set the
    # same values on both sides or leave both unset.
    if settings.PGBELL_JWT_AUDIENCE:
        claims["aud"] = settings.PGBELL_JWT_AUDIENCE
    if settings.PGBELL_JWT_ISSUER:
        claims["iss"] = settings.PGBELL_JWT_ISSUER
    return {
        "token": jwt.encode(claims, settings.PGBELL_JWT_SECRET, algorithm="HS256"),
        "expires_in": settings.PGBELL_JWT_TTL,
        "user": {"id": str(user.pk), "username": user.get_username()},
    }
