"""Verify the JWTs an application issues, and issue pgbell's own (HS256).

Key sources, any combination: an HS256 shared secret, a PEM public key, a
JWKS URL. The source's key type fixes the algorithm, so an HS256 token is
only ever checked against the secret and a public key is never used as an
HMAC secret (the algorithm-confusion attack). Symmetric keys in a JWKS are
ignored: a published document cannot hold a secret (pgbell.jwks).

Knows nothing of the aiohttp server: the REST and WebSocket layers turn
TokenError into their own 401 / 4401 answers. No message and no log line
carries a token.
"""

from __future__ import annotations

import hashlib
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import jwt

from pgbell.jwks import ASYMMETRIC_ALGS, JwksCache, JwksStats, Key, algs_for, load_public_key

__all__ = ["Identity", "TokenError", "TokenVerifier", "issue_token", "load_public_key"]

# exp, nbf and iat are checked to the second: pgbell's own tokens are issued
# on the host that checks them, and an application's hosts keep NTP time.
LEEWAY_SECONDS = 0
MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key at least as long as the hash
MAX_TOKEN_CHARS = 16 * 1024  # more than any header allows; bounds the work per token
MAX_USER_ID_CHARS = 255
# Verified tokens are remembered (under a hash of the token, never the token
# itself), so that a user's sockets reconnecting at once check its signature
# once: at most this many, each until its exp and for at most
# CACHE_MAX_AGE seconds (or the JWKS keys' max age, if shorter), so that a
# key withdrawn from a JWKS stops admitting its tokens when the JWKS cache
# lets it go. A pgbell-issued token's revocation is checked on every use
# (pgbell.http.auth), cached or not.
CACHE_SIZE = 16_384
CACHE_MAX_AGE = 300.0


class TokenError(Exception):
    """code is the wire error code: 'token_expired' (a valid token past its
    exp) or 'unauthorized' (everything else)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _refuse(message: str) -> TokenError:
    return TokenError("unauthorized", message)


@dataclass(frozen=True)
class Identity:
    user_id: str  # the recipient id, as text
    expires_at: float  # epoch seconds (exp)
    claims: Mapping[str, Any]  # the verified claims, read-only


def _recipient(value: Any) -> str:
    """The recipient id as text: a JSON string, or an integer turned into text."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_USER_ID_CHARS:
        raise _refuse("the token's user claim is not a user id")
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise _refuse("the token's user claim contains control characters")
    return value


class TokenVerifier:
    """Verifies tokens against the configured key sources (at least one): an
    HS256 secret, a PEM public key, a JWKS (pgbell.jwks caches its keys)."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        jwks_url: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        user_claim: str = "sub",
        jwks_min_refetch: float = 5.0,
        jwks_max_age: float = 300.0,
        jwks_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (secret or public_key or jwks_url):
            raise ValueError("no key source: give a secret, a public key or a JWKS URL")
        if secret and len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"the secret must be at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret.encode() if secret else None
        self._pem: Key | None = None
        if public_key:
            key = load_public_key(public_key)
            self._pem = Key(algs_for(key)[0], key)
        self._jwks = (
            JwksCache(
                jwks_url,
                min_refetch=jwks_min_refetch,
                max_age=jwks_max_age,
                timeout=jwks_timeout,
                clock=clock,
            )
            if jwks_url
            else None
        )
        self._audience = audience
        self._issuer = issuer
        self._user_claim = user_claim
        self.stats = self._jwks.stats if self._jwks else JwksStats()
        self._clock = clock
        self._cache_age = min(CACHE_MAX_AGE, jwks_max_age) if jwks_url else CACHE_MAX_AGE
        # sha256 of the token -> (its identity, clock() after which it is checked again)
        self._verified: OrderedDict[bytes, tuple[Identity, float]] = OrderedDict()

    async def verify(self, token: str) -> Identity:
        """The identity a valid token carries, or TokenError."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            raise _refuse("the token is malformed")
        key = hashlib.sha256(token.encode()).digest()
        hit = self._verified.get(key)
        if hit is not None:
            identity, fresh_until = hit
            if time.time() < identity.expires_at and self._clock() < fresh_until:
                self._verified.move_to_end(key)
                return identity
            del self._verified[key]  # expired (checked again below) or too old
        identity = await self._verify(token)
        self._verified[key] = (identity, self._clock() + self._cache_age)
        if len(self._verified) > CACHE_SIZE:
            self._verified.popitem(last=False)
        return identity

    async def _verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _refuse("the token is malformed") from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or not isinstance(kid, str | None):
            raise _refuse("the token is malformed")
        if alg == "HS256" and self._secret:
            keys = [Key(alg, self._secret)]
        elif alg in ASYMMETRIC_ALGS:
            # the PEM key first: it costs no fetch, and having no kid, no kid rules it out
            keys = [self._pem] if self._pem and self._pem.alg == alg else []
        else:
            raise _refuse("the token's algorithm is not accepted")
        identity = self._decode(token, keys)
        if identity is None and alg in ASYMMETRIC_ALGS and self._jwks is not None:
            published = await self._jwks.keys(alg, kid)
            if published is None:
                raise _refuse("the token's key id is unknown")
            identity = self._decode(token, published)
        if identity is None:
            raise _refuse("the token's signature matches no configured key")
        return identity

    def _decode(self, token: str, keys: list[Key]) -> Identity | None:
        """Check the signature against each key in turn, then the claims of the
        first that matches; None when none does."""
        for key in keys:
            try:
                claims = jwt.decode(
                    token,
                    key.key,
                    algorithms=[key.alg],
                    audience=self._audience,
                    issuer=self._issuer,
                    leeway=LEEWAY_SECONDS,
                    options={
                        "require": ["exp"],
                        "verify_aud": self._audience is not None,  # unset: aud not checked
                        "verify_sub": False,  # an integer sub is a valid recipient here
                        "enforce_minimum_key_length": True,  # raise, never warn per request
                    },
                )
            except jwt.InvalidSignatureError:
                continue  # PyJWT checks the signature before any claim: try the next key
            except jwt.ExpiredSignatureError:
                raise TokenError("token_expired", "the token has expired") from None
            except jwt.MissingRequiredClaimError as exc:
                raise _refuse(f"the token lacks the {exc.claim!r} claim") from None
            except jwt.InvalidAudienceError:
                raise _refuse("the token is not for this audience") from None
            except jwt.InvalidIssuerError:
                raise _refuse("the token's issuer is not accepted") from None
            except jwt.ImmatureSignatureError:
                raise _refuse("the token is not valid yet") from None
            except jwt.PyJWTError:
                raise _refuse("the token is malformed") from None
            exp = claims["exp"]
            # PyJWT also takes "123" and integers no float can hold; pgbell wants a number
            if isinstance(exp, bool) or not isinstance(exp, int | float) or exp >= 2**53:
                raise _refuse("the token's exp is not a number")
            user_id = _recipient(claims.get(self._user_claim))
            return Identity(user_id, float(exp), MappingProxyType(claims))
        return None

    async def close(self) -> None:
        """Cancel a JWKS fetch under way and close its HTTP session, if any."""
        if self._jwks is not None:
            await self._jwks.close()


def issue_token(
    secret: str,
    ttl: int,
    user_id: str,
    *,
    audience: str | None = None,
    issuer: str | None = None,
    user_claim: str = "sub",
    extra: Mapping[str, Any] | None = None,
) -> str:
    """An HS256 token: user_claim -> user_id, iat, exp = now + ttl, aud and iss
    when given, plus `extra`, which may not override any of those."""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"the secret must be at least {MIN_SECRET_BYTES} bytes")
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    now = int(time.time())
    try:  # pgbell never issues a token it would refuse
        user_id = _recipient(user_id)
    except TokenError as exc:
        raise ValueError(exc.message) from None
    claims: dict[str, Any] = {user_claim: user_id, "iat": now, "exp": now + ttl}
    if audience is not None:
        claims["aud"] = audience
    if issuer is not None:
        claims["iss"] = issuer
    clash = set(extra or ()) & {user_claim, "iat", "exp", "aud", "iss"}
    if clash:
        raise ValueError(f"extra claims may not set {sorted(clash)}")
    return jwt.encode({**claims, **(extra or {})}, secret, algorithm="HS256")
