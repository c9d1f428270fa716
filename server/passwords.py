"""Passwords (argon2id) and access tokens (HS256 JWTs).

Knows nothing of HTTP: the REST and WebSocket layers turn TokenError into
their own 401 / 4401 answers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verified against when the username is unknown, so that a wrong username
# costs as long as a wrong password and the two cannot be told apart.
_DUMMY_HASH = _hasher.hash("pgbell-no-such-user")
ALGORITHM = "HS256"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class Claims:
    user_id: int
    username: str
    roles: tuple[str, ...]
    expires_at: float


class TokenError(Exception):
    """code is the wire error code: 'unauthorized' or 'token_expired'."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def issue_token(secret: str, ttl: int, user_id: int, username: str, roles: list[str]) -> str:
    now = int(time.time())
    claims = {"sub": str(user_id), "name": username, "roles": roles, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_token(secret: str, token: str) -> Claims:
    try:
        # algorithms pins HS256: 'none' and every other alg are refused
        raw = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError:
        raise TokenError("token_expired", "the token has expired; log in again") from None
    except jwt.PyJWTError:
        raise TokenError(
            "unauthorized", "the token is missing, malformed or badly signed"
        ) from None
    try:
        user_id = int(raw["sub"])
        roles = tuple(str(r) for r in raw.get("roles", []))
    except (TypeError, ValueError):
        raise TokenError("unauthorized", "the token's claims are malformed") from None
    if not 0 < user_id < 2**63:  # a bigint id, or the database would refuse it
        raise TokenError("unauthorized", "the token's subject is not a user id")
    return Claims(user_id, str(raw.get("name", "")), roles, float(raw["exp"]))
