"""Public keys for pgbell.tokens: a PEM key (inline or a file) and the keys of a
JWKS endpoint, cached.

The key type fixes the algorithm a key may verify. A JWKS is fetched on
first use and cached; an unknown kid, or keys older than max_age, cause a
refetch, at most one per min_refetch seconds, shared by every caller
waiting on it. A failed fetch keeps the cached keys and logs a warning.
Symmetric keys in a JWKS are ignored: a published document cannot hold a
secret. Knows nothing of HTTP servers; it is an HTTP client of the JWKS.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

log = logging.getLogger(__name__)

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
MIN_RSA_BITS = 2048
MAX_JWKS_BYTES = 1024 * 1024
MAX_JWKS_KEYS = 100
_RSA_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
ASYMMETRIC_ALGS = _RSA_ALGS | set(_EC_ALGS.values()) | {"EdDSA"}
_JWK_LOADERS = {
    "RSA": RSAAlgorithm.from_jwk,
    "EC": ECAlgorithm.from_jwk,
    "OKP": OKPAlgorithm.from_jwk,
}


@dataclass(frozen=True)
class Key:
    alg: str
    key: PublicKey | bytes  # bytes: the HS256 secret


@dataclass
class JwksStats:
    """Counters for /metrics: JWKS fetches begun, and those that failed."""

    jwks_fetches: int = 0
    jwks_failures: int = 0


def algs_for(key: object) -> tuple[str, frozenset[str]]:
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
    algs_for(key)
    return key  # type: ignore[return-value]  # _algs_for accepted its type


def _jwk_to_key(jwk: Any) -> Key | None:
    """The key of a JWKS entry, or None when it is symmetric, private, not for
    signatures, unsupported, or pins an alg its key type cannot have."""
    if not isinstance(jwk, dict) or jwk.get("kty") not in _JWK_LOADERS:
        return None  # 'oct' lands here: never a shared secret from a published document
    if "d" in jwk or jwk.get("use", "sig") != "sig":
        return None
    try:
        key = _JWK_LOADERS[jwk["kty"]](jwk)
        default, allowed = algs_for(key)
    except Exception:  # malformed numbers, unknown curves, short RSA keys...
        return None
    alg = jwk.get("alg", default)
    return Key(alg, key) if alg in allowed else None


class JwksCache:
    """The keys of one JWKS endpoint, by kid."""

    def __init__(
        self,
        url: str,
        *,
        min_refetch: float = 5.0,
        max_age: float = 300.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the JWKS URL must be an http:// or https:// URL")
        self._url = url
        # logged without credentials or query, which may hold an API key
        self._label = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
        self._min_refetch = min_refetch
        self._max_age = max_age
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self._keys: dict[str | None, list[Key]] = {}
        self._fetched_at: float | None = None  # last success
        self._attempted_at: float | None = None  # last fetch begun, success or not
        self._inflight: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.stats = JwksStats()

    async def keys(self, alg: str, kid: str | None) -> list[Key] | None:
        """The keys of this alg, with this kid when the token names one; None
        when the kid is unknown even after a refetch."""
        if self._fetched_at is None or self._clock() - self._fetched_at >= self._max_age:
            await self._refresh()
        if kid is None:
            return [k for keys in self._keys.values() for k in keys if k.alg == alg]
        if kid not in self._keys:
            await self._refresh()
        if kid not in self._keys:
            return None
        return [k for k in self._keys[kid] if k.alg == alg]

    async def _refresh(self) -> None:
        """Fetch the JWKS, or share the fetch under way; skip it when the last
        one began less than min_refetch seconds ago."""
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
            self._keys = await self._download()
            self._fetched_at = self._clock()
        except Exception as exc:  # any failure: keep the cached keys, stale or not
            self.stats.jwks_failures += 1
            log.warning(
                "JWKS fetch from %s failed (%s); keeping %d cached keys",
                self._label,
                str(exc) or type(exc).__name__,
                sum(map(len, self._keys.values())),
            )
        finally:
            self._inflight = None

    async def _download(self) -> dict[str | None, list[Key]]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        async with self._session.get(self._url) as resp:
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
        keys: dict[str | None, list[Key]] = {}
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
