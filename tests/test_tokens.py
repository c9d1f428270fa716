"""pgbell.tokens: application tokens checked against a secret, a PEM public key
or a JWKS served by a real local HTTP server; pgbell's own tokens issued.

No database. The JWKS server counts its requests and can be switched to fail;
the verifier's clock is injected, so the refetch windows are checked by
moving the clock, never by sleeping."""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from pgbell import tokens
from pgbell.tokens import TokenError, TokenVerifier, issue_token, load_public_key
from tests.support import wait_until

SECRET = "s3cret-" + "x" * 40  # 47 bytes: above the HS256 minimum, so PyJWT never warns
WAIT = 10.0  # seconds: the bound on every wait in this file

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


# ---------------------------------------------------------------- helpers


def pem(private: Any) -> str:
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def jwk(private: PrivateKey, kid: str | None, alg: str | None = None) -> dict[str, Any]:
    public = private.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        data = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        data = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        data = OKPAlgorithm.to_jwk(public, as_dict=True)
    if kid is not None:
        data["kid"] = kid
    if alg is not None:
        data["alg"] = alg
    return data


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "42", "exp": int(time.time()) + 60, **extra}


def sign(key: Any, alg: str, payload: dict[str, Any] | None = None, kid: str | None = None) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims() if payload is None else payload, key, algorithm=alg, headers=headers)


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def by_hand(header: dict[str, Any], payload: dict[str, Any], hmac_key: bytes | None) -> str:
    """A token PyJWT would refuse to make: alg none, or HS256 keyed with a PEM."""
    signing_input = b64(json.dumps(header).encode()) + b"." + b64(json.dumps(payload).encode())
    signature = (
        b"" if hmac_key is None else hmac.new(hmac_key, signing_input, hashlib.sha256).digest()
    )
    return (signing_input + b"." + b64(signature)).decode()


async def refused(verifier: TokenVerifier, token: str, code: str = "unauthorized") -> str:
    with pytest.raises(TokenError) as caught:
        await asyncio.wait_for(verifier.verify(token), WAIT)
    assert caught.value.code == code, caught.value.message
    assert not token or token not in caught.value.message
    return caught.value.message


async def user_of(verifier: TokenVerifier, token: str) -> str:
    return (await asyncio.wait_for(verifier.verify(token), WAIT)).user_id


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Jwks:
    """A JWKS endpoint: serves `keys`, counts requests, fails on demand."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.requests = 0
        self.mode = "ok"
        self.gate = asyncio.Event()  # cleared: requests wait until it is set
        self.gate.set()
        self.arrived = asyncio.Event()  # set by every request
        self.release = asyncio.Event()  # set at teardown: ends the 'hang' requests
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.arrived.set()
        await self.gate.wait()
        if self.mode == "500":
            return web.Response(status=500, text="down")
        if self.mode == "bad_json":
            return web.Response(text="{nope", content_type="application/json")
        if self.mode == "not_jwks":
            return web.json_response({"hello": "world"})
        if self.mode == "too_big":
            return web.json_response({"keys": self.keys, "pad": "x" * (1024 * 1024)})
        if self.mode == "too_many":
            return web.json_response({"keys": [self.keys[0]] * 101})
        if self.mode == "close":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if self.mode == "hang":
            await self.release.wait()
        return web.json_response({"keys": self.keys})


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_other() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
async def jwks(aiohttp_server: Any) -> AsyncIterator[Jwks]:
    state = Jwks()
    app = web.Application()
    app.router.add_get("/jwks.json", state.handle)
    server = await aiohttp_server(app)
    state.url = str(server.make_url("/jwks.json"))
    yield state
    state.gate.set()
    state.release.set()


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., TokenVerifier]]:
    """TokenVerifier(...), closed after the test."""
    made: list[TokenVerifier] = []

    def factory(**kwargs: Any) -> TokenVerifier:
        made.append(TokenVerifier(**kwargs))
        return made[-1]

    yield factory
    for verifier in made:
        await verifier.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


# ---------------------------------------------------------------- HS256 and PEM keys


async def test_hs256_with_the_secret_is_accepted(make):
    verifier = make(secret=SECRET)
    identity = await verifier.verify(sign(SECRET, "HS256", claims(role="x")))
    assert identity.user_id == "42"
    assert identity.claims["role"] == "x"
    assert identity.expires_at > time.time()


async def test_issue_token_round_trip_with_audience_issuer_and_user_claim(make):
    token = issue_token(
        SECRET, 60, "9f1c0b3e-5d2a-4c1e-8f00-000000000001",
        audience="app", issuer="https://login.example", user_claim="uid", extra={"roles": ["a"]},
    )  # fmt: skip
    verifier = make(secret=SECRET, audience="app", issuer="https://login.example", user_claim="uid")
    identity = await verifier.verify(token)
    assert identity.user_id == "9f1c0b3e-5d2a-4c1e-8f00-000000000001"
    assert identity.claims["roles"] == ["a"]
    assert identity.claims["aud"] == "app" and identity.claims["iss"] == "https://login.example"
    assert identity.expires_at - identity.claims["iat"] == 60
    await refused(make(secret=SECRET), token)  # the user id is under uid, not sub


@pytest.mark.parametrize(
    "call",
    [
        lambda: issue_token("short", 60, "1"),
        lambda: issue_token(SECRET, 0, "1"),
        lambda: issue_token(SECRET, 60, ""),
        lambda: issue_token(SECRET, 60, "a\nb"),
        lambda: issue_token(SECRET, 60, "1", extra={"exp": 1}),
        lambda: issue_token(SECRET, 60, "1", user_claim="uid", extra={"uid": "2"}),
    ],
    ids=["short-secret", "zero-ttl", "empty-user", "control-char", "extra-exp", "extra-user"],
)
def test_issue_token_refuses_what_it_would_not_accept(call):
    with pytest.raises(ValueError):
        call()


async def test_rs256_with_an_inline_pem(make, rsa_key):
    assert await user_of(make(public_key=pem(rsa_key)), sign(rsa_key, "RS256")) == "42"


async def test_rs256_with_a_pem_file(make, rsa_key, tmp_path):
    path = tmp_path / "public.pem"
    path.write_text(pem(rsa_key))
    assert await user_of(make(public_key=str(path)), sign(rsa_key, "RS256")) == "42"


@pytest.mark.parametrize(
    ("private", "alg"),
    [
        (lambda: ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (lambda: ec.generate_private_key(ec.SECP384R1()), "ES384"),
        (lambda: ec.generate_private_key(ec.SECP521R1()), "ES512"),
        (ed25519.Ed25519PrivateKey.generate, "EdDSA"),
    ],
    ids=["ES256", "ES384", "ES512", "EdDSA"],
)
async def test_ec_and_eddsa_with_a_pem(make, private, alg):
    key = private()
    assert await user_of(make(public_key=pem(key)), sign(key, alg)) == "42"


async def test_the_pem_key_type_fixes_the_alg(make, rsa_key):
    # the RSA PEM verifies RS256 only, even for a PS256 or RS512 signature by the same key
    verifier = make(public_key=pem(rsa_key))
    await refused(verifier, sign(rsa_key, "RS512"))
    await refused(verifier, sign(rsa_key, "PS256"))


async def test_a_kid_is_ignored_when_only_a_pem_key_is_set(make, ec_key):
    assert await user_of(make(public_key=pem(ec_key)), sign(ec_key, "ES256", kid="k9")) == "42"


async def test_hs256_signed_with_the_public_pem_as_secret_is_refused(make, rsa_key, jwks):
    jwks.keys = [jwk(rsa_key, "r1")]
    forged = by_hand({"alg": "HS256", "typ": "JWT"}, claims(), pem(rsa_key).encode())
    await refused(make(public_key=pem(rsa_key)), forged)
    await refused(make(public_key=pem(rsa_key), secret=SECRET), forged)
    await refused(make(public_key=pem(rsa_key), jwks_url=jwks.url), forged)
    assert jwks.requests == 0  # an HS256 token never reaches the JWKS


async def test_a_token_signed_by_a_foreign_key_is_refused(make, rsa_key, rsa_other, jwks):
    jwks.keys = [jwk(rsa_key, "r1")]
    await refused(make(public_key=pem(rsa_key)), sign(rsa_other, "RS256"))
    await refused(make(secret=SECRET), sign("another-" + SECRET, "HS256"))
    verifier = make(jwks_url=jwks.url)
    await refused(verifier, sign(rsa_other, "RS256", kid="r1"))
    await refused(verifier, sign(rsa_other, "RS256"))


@pytest.mark.parametrize(
    "header",
    [{"alg": "none", "typ": "JWT"}, {"alg": "none", "kid": "r1"}, {"typ": "JWT"}, {"alg": 5}],
    ids=["none", "none-with-kid", "no-alg", "alg-not-text"],
)
async def test_unsigned_or_algless_tokens_are_refused(make, rsa_key, jwks, header):
    jwks.keys = [jwk(rsa_key, "r1")]
    verifier = make(secret=SECRET, public_key=pem(rsa_key), jwks_url=jwks.url)
    await refused(verifier, by_hand(header, claims(), None))


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
async def test_other_hmac_algs_are_refused_even_with_the_right_secret(make, alg):
    secret = "k" * 64  # long enough for HS512, so that PyJWT signs without a warning
    await refused(make(secret=secret), sign(secret, alg))


async def test_an_alg_with_no_key_source_is_refused(make, rsa_key, ec_key):
    await refused(make(public_key=pem(rsa_key)), sign(SECRET, "HS256"))
    await refused(make(secret=SECRET), sign(rsa_key, "RS256"))
    await refused(make(public_key=pem(rsa_key)), sign(ec_key, "ES256"))


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b.c", "a.b", "x" * 20000, "eyJhbGciOiJIUzI1NiJ9.e30.bad"],
    ids=["empty", "one-part", "garbage", "two-parts", "huge", "bad-signature"],
)
async def test_malformed_tokens_are_refused(make, token):
    await refused(make(secret=SECRET), token)


# ---------------------------------------------------------------- claims


async def test_expired_is_token_expired(make):
    message = await refused(
        make(secret=SECRET),
        sign(SECRET, "HS256", claims(exp=int(time.time()) - 10)),
        "token_expired",
    )
    assert "expired" in message


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (lambda: {"sub": "42"}, "exp"),
        (lambda: claims(aud="other", iss="https://login.example"), "audience"),
        (lambda: claims(iss="https://login.example"), "aud"),
        (lambda: claims(aud="app", iss="https://evil.example"), "issuer"),
        (lambda: claims(aud="app"), "iss"),
        (
            lambda: claims(aud="app", iss="https://login.example", nbf=int(time.time()) + 60),
            "not valid yet",
        ),
        (
            lambda: claims(aud="app", iss="https://login.example", iat=int(time.time()) + 60),
            "not valid yet",
        ),
        (lambda: claims(aud="app", iss="https://login.example", exp="soon"), "malformed"),
        (lambda: claims(aud="app", iss="https://login.example", exp="99999999999"), "not a number"),
        (lambda: claims(aud="app", iss="https://login.example", exp=10**400), "not a number"),
    ],
    ids=[
        "missing-exp",
        "wrong-aud",
        "missing-aud",
        "wrong-iss",
        "missing-iss",
        "nbf",
        "iat",
        "exp-text",
        "exp-numeric-text",
        "exp-huge",
    ],
)
async def test_claims_that_do_not_match_are_refused(make, payload, words):
    # payloads are built when the test runs: times taken at collection go stale
    verifier = make(secret=SECRET, audience="app", issuer="https://login.example")
    assert words in await refused(verifier, sign(SECRET, "HS256", payload()))


async def test_aud_and_iss_are_not_checked_when_not_configured(make):
    token = sign(SECRET, "HS256", claims(aud="anything", iss="anyone"))
    assert await user_of(make(secret=SECRET), token) == "42"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, "42"),
        ("42", "42"),
        ("9f1c0b3e-5d2a-4c1e-8f00-3a7b2c1d0e9f", "9f1c0b3e-5d2a-4c1e-8f00-3a7b2c1d0e9f"),
        ("x" * 255, "x" * 255),
        ("José", "José"),
    ],
    ids=["integer", "text", "uuid", "255-chars", "non-ascii"],
)
async def test_user_claim_values_accepted(make, value, expected):
    token = sign(SECRET, "HS256", {"user": value, "exp": int(time.time()) + 60})
    assert await user_of(make(secret=SECRET, user_claim="user"), token) == expected


@pytest.mark.parametrize(
    "value",
    [True, 4.2, {"id": 1}, [1], "", "x" * 256, "4\n2", "4\x002", "4\x7f2", "4\x852", None],
    ids=[
        "bool",
        "float",
        "object",
        "list",
        "empty",
        "256-chars",
        "newline",
        "nul",
        "del",
        "c1",
        "null",
    ],
)
async def test_user_claim_values_refused(make, value):
    token = sign(SECRET, "HS256", {"sub": value, "exp": int(time.time()) + 60})
    assert "user claim" in await refused(make(secret=SECRET), token)


async def test_a_missing_user_claim_is_refused(make):
    await refused(make(secret=SECRET, user_claim="uid"), sign(SECRET, "HS256"))


# ---------------------------------------------------------------- JWKS


@pytest.mark.parametrize("which", ["rsa", "ec", "ed"])
async def test_jwks_key_with_kid_is_accepted(make, jwks, rsa_key, ec_key, ed_key, which):
    key, alg = {"rsa": (rsa_key, "RS256"), "ec": (ec_key, "ES256"), "ed": (ed_key, "EdDSA")}[which]
    jwks.keys = [jwk(rsa_key, "r1"), jwk(ec_key, "e1"), jwk(ed_key, "d1")]
    kid = {"rsa": "r1", "ec": "e1", "ed": "d1"}[which]
    verifier = make(jwks_url=jwks.url)
    assert await user_of(verifier, sign(key, alg, kid=kid)) == "42"
    assert await user_of(verifier, sign(key, alg, kid=kid)) == "42"
    assert jwks.requests == 1  # cached
    # the right key under another key's kid is refused: the kid picks the key
    other = "e1" if which == "rsa" else "r1"
    await refused(verifier, sign(key, alg, kid=other))


async def test_a_token_without_kid_is_tried_against_every_jwks_key_of_its_alg(
    make, jwks, rsa_key, rsa_other
):
    jwks.keys = [jwk(rsa_other, "r0"), jwk(rsa_key, "r1"), jwk(rsa_key, None)]
    assert await user_of(make(jwks_url=jwks.url), sign(rsa_key, "RS256")) == "42"


async def test_a_jwk_alg_pins_the_alg(make, jwks, rsa_key):
    jwks.keys = [jwk(rsa_key, "r1", alg="PS256")]
    verifier = make(jwks_url=jwks.url)
    assert await user_of(verifier, sign(rsa_key, "PS256", kid="r1")) == "42"
    await refused(verifier, sign(rsa_key, "RS256", kid="r1"))


@pytest.mark.parametrize(
    "entry",
    [
        lambda k: {**jwk(k, "bad"), "alg": "HS256"},
        lambda k: {**jwk(k, "bad"), "alg": "ES256"},
        lambda k: {**jwk(k, "bad"), "use": "enc"},
        lambda k: {**RSAAlgorithm.to_jwk(k, as_dict=True), "kid": "bad"},
        lambda k: {**jwk(k, "bad"), "n": "not base64 !"},
        lambda k: jwk(rsa.generate_private_key(public_exponent=65537, key_size=1024), "bad"),
    ],
    ids=["pins-hs256", "pins-wrong-family", "use-enc", "private", "broken", "rsa-1024"],
)
async def test_unusable_jwks_entries_are_skipped(make, jwks, rsa_key, entry):
    jwks.keys = [entry(rsa_key), jwk(rsa_key, "good")]
    verifier = make(jwks_url=jwks.url)
    assert await user_of(verifier, sign(rsa_key, "RS256", kid="good")) == "42"
    await refused(verifier, sign(rsa_key, "RS256", kid="bad"))


async def test_oct_keys_in_the_jwks_are_never_used(make, jwks, rsa_key):
    shared = "published-" + SECRET
    jwks.keys = [
        {"kty": "oct", "kid": "sym", "alg": "HS256", "k": b64(shared.encode()).decode()},
        jwk(rsa_key, "r1"),
    ]
    await refused(make(jwks_url=jwks.url), sign(shared, "HS256", kid="sym"))
    await refused(make(jwks_url=jwks.url, secret=SECRET), sign(shared, "HS256", kid="sym"))
    await refused(make(jwks_url=jwks.url), sign(rsa_key, "RS256", kid="sym"))
    # and the secret never stands in for a JWKS oct key, nor the other way round
    assert await user_of(make(jwks_url=jwks.url, secret=SECRET), sign(SECRET, "HS256", kid="sym"))


async def test_key_rotation_a_new_kid_causes_one_refetch(make, jwks, rsa_key, rsa_other, clock):
    jwks.keys = [jwk(rsa_key, "old")]
    verifier = make(jwks_url=jwks.url, clock=clock)
    assert await user_of(verifier, sign(rsa_key, "RS256", kid="old")) == "42"
    jwks.keys = [jwk(rsa_key, "old"), jwk(rsa_other, "new")]
    clock.now += 5  # the min-refetch window has passed
    assert await user_of(verifier, sign(rsa_other, "RS256", kid="new")) == "42"
    assert await user_of(verifier, sign(rsa_key, "RS256", kid="old")) == "42"
    assert jwks.requests == 2
    assert verifier.stats.jwks_fetches == 2 and verifier.stats.jwks_failures == 0


async def test_unknown_kid_refetches_once_per_window_however_many_ask(make, jwks, rsa_key, clock):
    jwks.keys = [jwk(rsa_key, "r1")]
    verifier = make(jwks_url=jwks.url, clock=clock, jwks_min_refetch=5)
    assert await user_of(verifier, sign(rsa_key, "RS256", kid="r1")) == "42"
    clock.now += 5
    unknown = sign(rsa_key, "RS256", kid="nope")
    jwks.gate.clear()  # hold the refetch until all 20 are waiting on it
    jwks.arrived.clear()
    results = asyncio.gather(*(verifier.verify(unknown) for _ in range(20)), return_exceptions=True)
    await asyncio.wait_for(jwks.arrived.wait(), WAIT)
    jwks.gate.set()
    outcome = await asyncio.wait_for(results, WAIT)
    assert all(isinstance(r, TokenError) and r.code == "unauthorized" for r in outcome), outcome
    assert jwks.requests == 2, "the 20 verifications share one refetch"
    clock.now += 4.9  # still inside the window
    await refused(verifier, unknown)
    assert jwks.requests == 2
    clock.now += 0.1
    await refused(verifier, unknown)
    assert jwks.requests == 3


async def test_a_cold_start_makes_one_fetch_for_concurrent_verifications(make, jwks, ec_key):
    jwks.keys = [jwk(ec_key, "e1")]
    verifier = make(jwks_url=jwks.url)
    tokens = [sign(ec_key, "ES256", kid="e1") for _ in range(20)]
    users = await asyncio.wait_for(asyncio.gather(*map(verifier.verify, tokens)), WAIT)
    assert {u.user_id for u in users} == {"42"}
    assert jwks.requests == 1


async def test_a_cancelled_verification_does_not_cancel_the_shared_fetch(make, jwks, ec_key):
    jwks.keys = [jwk(ec_key, "e1")]
    verifier = make(jwks_url=jwks.url)
    token = sign(ec_key, "ES256", kid="e1")
    jwks.gate.clear()
    first = asyncio.ensure_future(verifier.verify(token))
    second = asyncio.ensure_future(verifier.verify(token))
    await asyncio.wait_for(jwks.arrived.wait(), WAIT)
    first.cancel()
    jwks.gate.set()
    assert (await asyncio.wait_for(second, WAIT)).user_id == "42"
    assert first.cancelled() and jwks.requests == 1


async def test_stale_keys_are_refreshed_after_max_age(make, jwks, rsa_key, rsa_other, clock):
    jwks.keys = [jwk(rsa_key, "r1")]
    verifier = make(jwks_url=jwks.url, clock=clock, jwks_max_age=300)
    token = sign(rsa_key, "RS256", kid="r1")
    await user_of(verifier, token)
    clock.now += 299
    await user_of(verifier, token)
    assert jwks.requests == 1
    jwks.keys = [jwk(rsa_other, "r2")]  # r1 withdrawn
    clock.now += 1
    await refused(verifier, token)
    assert jwks.requests == 2


@pytest.mark.parametrize(
    "mode", ["500", "bad_json", "not_jwks", "too_big", "too_many", "close", "hang"]
)
async def test_a_jwks_outage_keeps_the_cached_keys(make, jwks, rsa_key, clock, caplog, mode):
    jwks.keys = [jwk(rsa_key, "r1")]
    verifier = make(jwks_url=jwks.url, clock=clock, jwks_timeout=0.3)
    token = sign(rsa_key, "RS256", kid="r1")
    await user_of(verifier, token)
    jwks.mode = mode
    clock.now += 300  # the keys are stale: the next verification refreshes them
    with caplog.at_level(logging.WARNING, logger="pgbell.jwks"):
        assert await user_of(verifier, token) == "42"
        await refused(verifier, sign(rsa_key, "RS256", kid="unknown"))
    assert verifier.stats.jwks_fetches == 2 and verifier.stats.jwks_failures == 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "pgbell.jwks"]
    assert len(warnings) == 1 and "keeping 1 cached keys" in warnings[0], warnings
    assert token not in caplog.text and jwks.url in warnings[0]


async def test_a_failed_first_fetch_refuses_without_crashing_and_is_retried_later(
    make, jwks, rsa_key, clock, caplog
):
    jwks.keys = [jwk(rsa_key, "r1")]
    jwks.mode = "500"
    # credentials and query of the URL stay out of the log: they may hold an API key
    url = jwks.url.replace("http://", "http://user:hunter2@") + "?api_key=topsecret"
    verifier = make(jwks_url=url, clock=clock)
    token = sign(rsa_key, "RS256", kid="r1")
    with caplog.at_level(logging.WARNING, logger="pgbell.jwks"):
        await refused(verifier, token)
        await refused(verifier, token)
    assert jwks.requests == 1  # a failing JWKS is not hammered either
    assert "keeping 0 cached keys" in caplog.text and jwks.url in caplog.text
    assert "hunter2" not in caplog.text and "topsecret" not in caplog.text
    jwks.mode = "ok"
    clock.now += 5
    assert await user_of(verifier, token) == "42"
    assert jwks.requests == 2


async def test_pem_and_jwks_together(make, jwks, rsa_key, ec_key):
    jwks.keys = [jwk(ec_key, "e1")]
    verifier = make(public_key=pem(rsa_key), jwks_url=jwks.url)
    assert await user_of(verifier, sign(rsa_key, "RS256", kid="not-in-jwks")) == "42"
    assert jwks.requests == 0  # the PEM key matched: no fetch
    assert await user_of(verifier, sign(ec_key, "ES256", kid="e1")) == "42"
    await refused(verifier, sign(ec_key, "ES256", kid="e2"))


async def test_close_closes_the_session_and_is_safe_twice(jwks, ec_key):
    jwks.keys = [jwk(ec_key, "e1")]
    verifier = TokenVerifier(jwks_url=jwks.url)
    await verifier.close()  # nothing opened yet
    assert await user_of(verifier, sign(ec_key, "ES256", kid="e1")) == "42"
    session = verifier._jwks._session
    await verifier.close()
    await verifier.close()
    assert session is not None and session.closed


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({}, "no key source"),
        ({"secret": ""}, "no key source"),
        ({"secret": "short"}, "32 bytes"),
        ({"jwks_url": "file:///etc/jwks.json"}, "http"),
        ({"jwks_url": "https://"}, "http"),
        ({"public_key": "/no/such/key.pem"}, "not found"),
    ],
)
def test_verifier_configuration_errors(kwargs, words):
    with pytest.raises(ValueError, match=words):
        TokenVerifier(**kwargs)


def _certificate(private: rsa.RSAPrivateKey) -> str:
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "login.example")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(private, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


async def test_a_certificate_is_accepted_as_a_public_key(make, rsa_key):
    assert await user_of(make(public_key=_certificate(rsa_key)), sign(rsa_key, "RS256")) == "42"


def _private_pem(private: Any) -> str:
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture
def bad_keys(rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> Iterator[dict[str, tuple[str, str]]]:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello, not a key")
    directory = tmp_path / "dir"
    directory.mkdir()
    yield {
        "missing-file": (str(tmp_path / "absent.pem"), "not found"),
        "directory": (str(directory), "not found"),
        "garbage-file": (str(garbage), "not a PEM public key"),
        "garbage-pem": (
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "not a PEM",
        ),
        "private-key": (_private_pem(rsa_key), "private key"),
        "rsa-1024": (pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)), "2048"),
        "dsa": (pem(dsa.generate_private_key(key_size=2048)), "unsupported key type"),
        "ed448": (pem(ed448.Ed448PrivateKey.generate()), "unsupported key type"),
        "secp256k1": (pem(ec.generate_private_key(ec.SECP256K1())), "unsupported key type"),
    }


def test_load_public_key_errors_name_the_problem_never_the_key(bad_keys):
    for case, (value, words) in bad_keys.items():
        with pytest.raises(ValueError) as caught:
            load_public_key(value)
        assert words in str(caught.value), case
        assert "BEGIN" not in str(caught.value) and "AAAA" not in str(caught.value), case


# ---------------------------------------------------------------- verified tokens remembered


@pytest.fixture
def decodes(monkeypatch) -> list[str]:
    """Every signature check pgbell.tokens makes, by the token's last characters."""
    seen: list[str] = []
    decode = jwt.decode

    def counting(token, *args, **kwargs):
        seen.append(token[-8:])
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(tokens.jwt, "decode", counting)
    return seen


async def test_a_verified_token_is_remembered_and_a_tampered_one_is_not(make, decodes):
    verifier = make(secret=SECRET)
    token = sign(SECRET, "HS256")
    first = await verifier.verify(token)
    assert await verifier.verify(token) == first
    assert len(decodes) == 1, "the same token was checked twice"
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    with pytest.raises(TokenError):
        await verifier.verify(tampered)


async def test_a_remembered_token_is_refused_once_expired(make):
    verifier = make(secret=SECRET)
    exp = int(time.time()) + 1
    token = sign(SECRET, "HS256", claims(exp=exp))
    await verifier.verify(token)
    await wait_until(lambda: time.time() >= exp, "the token's exp")
    with pytest.raises(TokenError) as refused:
        await verifier.verify(token)
    assert refused.value.code == "token_expired"


async def test_a_remembered_token_is_checked_again_after_the_max_age(make, clock, decodes):
    verifier = make(secret=SECRET, clock=clock)
    token = sign(SECRET, "HS256")
    await verifier.verify(token)
    clock.now += tokens.CACHE_MAX_AGE - 1
    await verifier.verify(token)
    assert len(decodes) == 1
    clock.now += 1
    await verifier.verify(token)
    assert len(decodes) == 2, "a token remembered past CACHE_MAX_AGE"


async def test_the_remembered_tokens_are_bounded_least_recently_used_first(
    make, decodes, monkeypatch
):
    monkeypatch.setattr(tokens, "CACHE_SIZE", 2)
    verifier = make(secret=SECRET)
    a, b, c = (sign(SECRET, "HS256", claims(sub=s)) for s in ("a", "b", "c"))
    for token in (a, b, a, c):  # c pushes out b, the least recently used
        await verifier.verify(token)
    assert len(decodes) == 3
    await verifier.verify(a)
    assert len(decodes) == 3, "a was used last but one: still remembered"
    await verifier.verify(b)
    assert len(decodes) == 4, "b was not forgotten"
