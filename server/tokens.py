"""Verify the JWTs an application issues, and issue pgbell's own (HS256).

Key sources, any combination: an HS256 shared secret, a PEM public key, a
JWKS URL. The source's key type fixes the algorithm, so an HS256 token is
only ever checked against the secret and a public key is never used as an
HMAC secret (the algorithm-confusion attack). Symmetric keys in a JWKS are
ignored: a published document cannot hold a secret.

Knows nothing of the aiohttp server: the REST and WebSocket layers turn
TokenError into their own 401 / 4401 answers. No message and no log line
carries a token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

log = logging.getLogger(__name__)

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
# exp, nbf and iat are checked to the second: pgbell's own tokens are issued
# on the host that checks them, and an application's hosts keep NTP time.
LEEWAY_SECONDS = 0
MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key at least as long as the hash
MIN_RSA_BITS = 2048
MAX_TOKEN_CHARS = 16 * 1024  # more than any header allows; bounds the work per token
MAX_USER_ID_CHARS = 255
MAX_JWKS_BYTES = 1024 * 1024
MAX_JWKS_KEYS = 100
_RSA_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_ASYMMETRIC_ALGS = _RSA_ALGS | set(_EC_ALGS.values()) | {"EdDSA"}
_JWK_LOADERS = {
    "RSA": RSAAlgorithm.from_jwk,
    "EC": ECAlgorithm.from_jwk,
    "OKP": OKPAlgorithm.from_jwk,
}


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


@dataclass
class TokenStats:
    """Counters for /metrics: JWKS fetches begun, and those that failed."""

    jwks_fetches: int = 0
    jwks_failures: int = 0


@dataclass(frozen=True)
class _Key:
    alg: str
    key: PublicKey | bytes  # bytes: the HS256 secret


def _algs_for(key: object) -> tuple[str, frozenset[str]]:
    """(default alg, every alg this key may verify) or ValueError."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} needed")
        return "RS256", _RSA_ALGS
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC_ALGS:
        alg = _EC_ALGS[key.curve.name]
        return alg, frozenset({alg})
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "EdDSA", frozenset({"EdDSA"})
    raise ValueError(
        f"unsupported key type {type(key).__name__}: use RSA, EC P-256/384/521 or Ed25519"
    )


def load_public_key(value: str) -> PublicKey:
    """Load a public key from PEM text (starting with -----BEGIN) or from the
    path of a PEM file. An X.509 certificate is accepted (its public key is
    used; its validity is not checked); a private key is refused, since pgbell
    only verifies. Raises ValueError naming what is wrong, never key material."""
    if value.lstrip().startswith("-----BEGIN"):
        data = value.encode()
    else:
        path = Path(value).expanduser()
        if not path.is_file():
            raise ValueError(f"public key file not found: {path}")
        data = path.read_bytes()
    if b"PRIVATE KEY-----" in data:
        raise ValueError("a private key was given; give the public key (pgbell only verifies)")
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            key: object = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = load_pem_public_key(data)
    except Exception:  # cryptography raises several types; none is worth more detail
        raise ValueError("not a PEM public key or certificate") from None
    _algs_for(key)
    return key  # type: ignore[return-value]  # _algs_for accepted its type


def _jwk_to_key(jwk: Any) -> _Key | None:
    """The key of a JWKS entry, or None when it is symmetric, private, not for
    signatures, unsupported, or pins an alg its key type cannot have."""
    if not isinstance(jwk, dict) or jwk.get("kty") not in _JWK_LOADERS:
        return None  # 'oct' lands here: never a shared secret from a published document
    if "d" in jwk or jwk.get("use", "sig") != "sig":
        return None
    try:
        key = _JWK_LOADERS[jwk["kty"]](jwk)
        default, allowed = _algs_for(key)
    except Exception:  # malformed numbers, unknown curves, short RSA keys...
        return None
    alg = jwk.get("alg", default)
    return _Key(alg, key) if alg in allowed else None


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
    """Verifies tokens against the configured key sources (at least one).

    JWKS keys are fetched on first use and cached; an unknown kid, or keys
    older than jwks_max_age, cause a refetch, at most one per
    jwks_min_refetch seconds, shared by every verification waiting on it. A
    failed fetch keeps the cached keys and logs a warning."""

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
        self._pem: _Key | None = None
        if public_key:
            key = load_public_key(public_key)
            self._pem = _Key(_algs_for(key)[0], key)
        self._jwks_url = jwks_url
        if jwks_url:
            parts = urlsplit(jwks_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("the JWKS URL must be an http:// or https:// URL")
            # logged without credentials or query, which may hold an API key
            self._jwks_label = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
        self._audience = audience
        self._issuer = issuer
        self._user_claim = user_claim
        self._min_refetch = jwks_min_refetch
        self._max_age = jwks_max_age
        self._timeout = aiohttp.ClientTimeout(total=jwks_timeout)
        self._clock = clock
        self._jwks: dict[str | None, list[_Key]] = {}
        self._fetched_at: float | None = None  # last success
        self._attempted_at: float | None = None  # last fetch begun, success or not
        self._inflight: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.stats = TokenStats()

    async def verify(self, token: str) -> Identity:
        """The identity a valid token carries, or TokenError."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            raise _refuse("the token is malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _refuse("the token is malformed") from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or not isinstance(kid, str | None):
            raise _refuse("the token is malformed")
        if alg == "HS256" and self._secret:
            keys = [_Key(alg, self._secret)]
        elif alg in _ASYMMETRIC_ALGS:
            # the PEM key first: it costs no fetch, and having no kid, no kid rules it out
            keys = [self._pem] if self._pem and self._pem.alg == alg else []
        else:
            raise _refuse("the token's algorithm is not accepted")
        identity = self._decode(token, keys)
        if identity is None and alg in _ASYMMETRIC_ALGS and self._jwks_url:
            identity = self._decode(token, await self._jwks_keys(alg, kid))
        if identity is None:
            raise _refuse("the token's signature matches no configured key")
        return identity

    async def _jwks_keys(self, alg: str, kid: str | None) -> list[_Key]:
        """The JWKS keys of this alg, with this kid when the token names one."""
        if self._fetched_at is None or self._clock() - self._fetched_at >= self._max_age:
            await self._refresh()
        if kid is None:
            return [k for keys in self._jwks.values() for k in keys if k.alg == alg]
        if kid not in self._jwks:
            await self._refresh()
        if kid not in self._jwks:
            raise _refuse("the token's key id is unknown")
        return [k for k in self._jwks[kid] if k.alg == alg]

    def _decode(self, token: str, keys: list[_Key]) -> Identity | None:
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

    async def _refresh(self) -> None:
        """Fetch the JWKS, or share the fetch under way; skip it when the last
        one began less than jwks_min_refetch seconds ago."""
        if self._inflight is None:
            now = self._clock()
            if self._attempted_at is not None and now - self._attempted_at < self._min_refetch:
                return
            self._attempted_at = now
            self._inflight = asyncio.create_task(self._fetch())
        # shielded: a client that hangs up must not cancel the fetch others wait on
        await asyncio.shield(self._inflight)

    async def _fetch(self) -> None:
        self.stats.jwks_fetches += 1
        try:
            self._jwks = await self._download()
            self._fetched_at = self._clock()
        except Exception as exc:  # any failure: keep the cached keys, stale or not
            self.stats.jwks_failures += 1
            log.warning(
                "JWKS fetch from %s failed (%s); keeping %d cached keys",
                self._jwks_label,
                str(exc) or type(exc).__name__,
                sum(map(len, self._jwks.values())),
            )
        finally:
            self._inflight = None

    async def _download(self) -> dict[str | None, list[_Key]]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        assert self._jwks_url is not None
        async with self._session.get(self._jwks_url) as resp:
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status}")
            body = bytearray()
            # read in chunks so that an endless or huge answer stops at the limit
            async for chunk in resp.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError(f"answer larger than {MAX_JWKS_BYTES} bytes")
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise ValueError(f"bad JSON: {exc}") from None
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise ValueError('not a JWKS: no "keys" list')
        if len(entries) > MAX_JWKS_KEYS:
            raise ValueError(f"{len(entries)} keys, more than {MAX_JWKS_KEYS}")
        keys: dict[str | None, list[_Key]] = {}
        for entry in entries:
            key = _jwk_to_key(entry)
            if key is not None:
                kid = entry.get("kid")
                keys.setdefault(kid if isinstance(kid, str) else None, []).append(key)
        return keys

    async def close(self) -> None:
        """Cancel a fetch under way and close the HTTP session, if one was opened."""
        if self._inflight is not None:
            self._inflight.cancel()
            await asyncio.gather(self._inflight, return_exceptions=True)
            self._inflight = None
        if self._session is not None:
            await self._session.close()
            self._session = None


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
