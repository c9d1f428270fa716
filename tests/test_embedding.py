"""pgbell beside an existing application: UUID users in the application's own
tables, RS256 tokens from its own key (a PEM file, or a JWKS served by a local
identity provider), its own staff table behind pgbell.role_members(), and a
writer login that is only a member of pgbell_writer."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import jwt
import psycopg
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from psycopg import sql

from pgbell.config import Settings
from pgbell.http.app import create_app
from pgbell.ops import migrate
from tests.support import (
    assert_no_frame_before_pong,
    next_frame,
    server_env,
    unique_name,
    with_login,
)
from tests.test_metrics import scrape, value

AUDIENCE = "pgbell"
ISSUER = "https://login.shop.example"
KID = "shop-2026"

APPLICATION = """
CREATE SCHEMA shop;
CREATE TABLE shop.users (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text NOT NULL);
CREATE TABLE shop.staff (user_id uuid PRIMARY KEY REFERENCES shop.users (id));
CREATE TABLE shop.orders (
    id    bigserial PRIMARY KEY,
    buyer uuid NOT NULL REFERENCES shop.users (id),
    item  text NOT NULL
);

INSERT INTO pgbell.templates (kind, title, action_url)
VALUES ('order_placed', 'Order: {item}', '/orders/{order_id}');

-- the application's trigger: runs with the writer's rights, calls pgbell.notify
CREATE FUNCTION shop.order_placed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pgbell.notify('order_placed', user_ids => ARRAY[o.buyer::text], roles => '{staff}',
                          data => jsonb_build_object('order_id', o.id, 'item', o.item))
       FROM new_orders o;
    RETURN NULL;
END $$;
CREATE TRIGGER _100_order_placed AFTER INSERT ON shop.orders
    REFERENCING NEW TABLE AS new_orders FOR EACH STATEMENT EXECUTE FUNCTION shop.order_placed();

-- the application's roles: 'staff' is its staff table
CREATE OR REPLACE FUNCTION pgbell.role_members(role text) RETURNS SETOF text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.user_id::text FROM shop.staff s WHERE role_members.role = 'staff'
$$;
"""


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


APP_KEY = _rsa()
FOREIGN_KEY = _rsa()


def mint(sub: str, key=APP_KEY, **override) -> str:
    claims = {"sub": sub, "aud": AUDIENCE, "iss": ISSUER, "exp": int(time.time()) + 300}
    claims.update(override)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID})


def _hs256_signed_with_the_public_key(sub: str) -> str:
    """The algorithm-confusion forgery: HS256 keyed with the public PEM, which
    anyone can read. PyJWT refuses to make one, so it is made by hand."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": KID}).encode())
    body = b64(
        json.dumps(
            {"sub": sub, "aud": AUDIENCE, "iss": ISSUER, "exp": int(time.time()) + 300}
        ).encode()
    )
    mac = hmac.new(_public_pem(APP_KEY), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(mac)}"


@pytest.fixture
def shop(empty_database: str) -> Iterator[dict]:
    """An application database: pgbell migrated beside the shop's own schema,
    four users (one buyer, two staff, one bystander) and a writer login that
    may insert orders and is otherwise only a member of pgbell_writer."""
    migrate.upgrade(empty_database)
    writer = unique_name("shop_writer")
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute(APPLICATION)
        ids = {
            name: str(
                conn.execute(
                    "INSERT INTO shop.users (name) VALUES (%s) RETURNING id", (name,)
                ).fetchone()[0]
            )
            for name in ("buyer", "staff_a", "staff_b", "bystander")
        }
        conn.execute("INSERT INTO shop.staff VALUES (%s), (%s)", (ids["staff_a"], ids["staff_b"]))
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE pgbell_writer").format(sql.Identifier(writer))
        )
        conn.execute(
            sql.SQL(
                "GRANT USAGE ON SCHEMA shop TO {w}; GRANT INSERT ON shop.orders TO {w};"
                " GRANT USAGE ON SEQUENCE shop.orders_id_seq TO {w}"
            ).format(w=sql.Identifier(writer))
        )
    yield {"url": empty_database, "ids": ids, "writer": with_login(empty_database, writer)}
    # roles belong to the cluster: this one goes, with its grants in this database
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (writer,)
        )
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(writer)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(writer)))


def _order(writer_url: str, buyer: str, item: str) -> None:
    with psycopg.connect(writer_url, autocommit=True) as conn:
        conn.execute("INSERT INTO shop.orders (buyer, item) VALUES (%s, %s)", (buyer, item))


@pytest.fixture
async def identity_provider(aiohttp_server):
    """A local identity provider publishing the application's key as a JWKS."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(APP_KEY.public_key()))
    jwk.update(kid=KID, use="sig", alg="RS256")

    async def jwks(request: web.Request) -> web.Response:
        return web.json_response({"keys": [jwk]})

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", jwks)
    srv = await aiohttp_server(app)
    return str(srv.make_url("/.well-known/jwks.json"))


@pytest.fixture(params=["pem-file", "jwks"])
async def pgbell(request, shop, aiohttp_server, tmp_path: Path, identity_provider):
    """pgbell serving the shop, checking RS256 tokens from a PEM file or a JWKS;
    no HS256 secret at all."""
    if request.param == "pem-file":
        pem = tmp_path / "shop.pem"
        pem.write_bytes(_public_pem(APP_KEY))
        keys = {"PGBELL_JWT_PUBLIC_KEY": str(pem)}
    else:
        keys = {"PGBELL_JWT_JWKS_URL": identity_provider}
    env = server_env(
        shop["url"],
        PGBELL_JWT_SECRET="",
        PGBELL_JWT_AUDIENCE=AUDIENCE,
        PGBELL_JWT_ISSUER=ISSUER,
        **keys,
    )
    srv = await aiohttp_server(create_app(Settings.from_env(env)))
    srv.ws_base = "ws" + str(srv.make_url("")).rstrip("/")[len("http") :]
    srv.base = str(srv.make_url("")).rstrip("/")
    return srv


async def _socket(http: aiohttp.ClientSession, srv, token: str, who: str):
    ws = await http.ws_connect(f"{srv.ws_base}/ws?token={token}")
    await next_frame(ws, "snapshot", where=f"for {who} on connect")
    return ws


async def test_a_writer_row_reaches_the_buyer_and_every_staff_member_only(pgbell, shop, http):
    ids = shop["ids"]
    sockets = {who: await _socket(http, pgbell, mint(ids[who]), who) for who in ids}

    _order(shop["writer"], ids["buyer"], "Teapot")
    for who in ("buyer", "staff_a", "staff_b"):
        frame = await next_frame(sockets[who], "notification", where=f"for {who}")
        note = frame["notification"]
        assert (note["kind"], note["title"], frame["unread_count"]) == (
            "order_placed",
            "Order: Teapot",
            1,
        )
    await assert_no_frame_before_pong(sockets["bystander"], "the bystander")

    # REST answers with the same identity: the buyer's own list
    headers = {"Authorization": f"Bearer {mint(ids['buyer'])}"}
    async with http.get(f"{pgbell.base}/notifications", headers=headers) as r:
        body = await r.json()
    assert r.status == 200 and [n["title"] for n in body["items"]] == ["Order: Teapot"]

    # a second `pgbell migrate` keeps the application's role_members
    migrate.upgrade(shop["url"])
    _order(shop["writer"], ids["bystander"], "Kettle")
    frame = await next_frame(sockets["staff_b"], "notification", where="after a second migrate")
    assert frame["notification"]["title"] == "Order: Kettle"
    frame = await next_frame(sockets["bystander"], "notification", where="as the buyer this time")
    assert frame["notification"]["title"] == "Order: Kettle"
    await assert_no_frame_before_pong(sockets["buyer"], "the first buyer, for another's order")


def _refused_tokens(sub: str) -> dict[str, str]:
    return {
        "hs256-keyed-with-the-public-key": _hs256_signed_with_the_public_key(sub),
        "foreign-key": mint(sub, key=FOREIGN_KEY),
        "wrong-aud": mint(sub, aud="another-service"),
        "wrong-iss": mint(sub, iss="https://evil.example"),
        "no-aud": mint(sub, aud=None),
        "no-exp": mint(sub, exp=None),
        "expired": mint(sub, exp=int(time.time()) - 30),
    }


async def test_tokens_the_application_did_not_issue_are_refused(pgbell, shop, http):
    buyer = shop["ids"]["buyer"]
    for name, token in _refused_tokens(buyer).items():
        ws = await http.ws_connect(f"{pgbell.ws_base}/ws?token={token}")
        msg = await ws.receive(timeout=5)
        assert (msg.type, ws.close_code) == (aiohttp.WSMsgType.CLOSE, 4401), f"{name}: {msg}"
        async with http.get(
            f"{pgbell.base}/notifications", headers={"Authorization": f"Bearer {token}"}
        ) as r:
            assert r.status == 401, f"{name}: {r.status}"
            code = (await r.json())["error"]["code"]
        assert code == ("token_expired" if name == "expired" else "unauthorized"), name


async def test_without_a_secret_pgbells_own_login_is_off(pgbell, http):
    async with http.post(
        f"{pgbell.base}/auth/login", json={"username": "ann", "password": "pw"}
    ) as r:
        assert r.status == 404
        assert "PGBELL_JWT_SECRET" in (await r.json())["error"]["message"]


async def test_the_demo_routes_say_the_demo_is_not_installed(pgbell, shop, http):
    token = mint(shop["ids"]["buyer"])
    async with http.post(
        f"{pgbell.base}/deals",
        json={"title": "x", "amount": 1},
        headers={"Authorization": f"Bearer {token}"},
    ) as r:
        assert r.status == 404
        assert "pgbell migrate --demo" in (await r.json())["error"]["message"]


def test_uuid_recipients_are_stored_as_text(shop):
    _order(shop["writer"], shop["ids"]["buyer"], "Cup")
    with psycopg.connect(shop["url"]) as conn:
        [(user_id, kind)] = conn.execute(
            "SELECT user_id, kind FROM pgbell.notifications WHERE user_id = %s",
            (shop["ids"]["buyer"],),
        ).fetchall()
    assert uuid.UUID(user_id) and kind == "order_placed"


async def test_jwks_fetches_are_counted_for_metrics(pgbell, shop, http, request):
    await _socket(http, pgbell, mint(shop["ids"]["buyer"]), "the buyer")
    samples = await scrape(http, pgbell.base)
    # a PEM key needs no fetch; the JWKS was fetched once, on first use
    fetches = 1 if request.node.callspec.params["pgbell"] == "jwks" else 0
    assert value(samples, "pgbell_jwks_fetches_total") == fetches
    assert value(samples, "pgbell_jwks_failures_total") == 0
