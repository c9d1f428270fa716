"""The REST half of PROTOCOL.md, line by line, from an independent client:
raw aiohttp requests, hand-made tokens, psql-style writers."""

from __future__ import annotations

import warnings

import jwt
import psycopg
import pytest

from pgbell.http import keys
from tests.contract_client import assert_error, database_outage, mint, rest
from tests.support import JWT_SECRET, add_user, insert_deal, login, wait_until

NOTIFICATION_KEYS = {
    "id",
    "kind",
    "title",
    "body",
    "priority",
    "action_url",
    "data",
    "created_at",
    "read_at",
}


async def _user(http, server, database_url, name="ann", roles=()):
    uid = add_user(database_url, name, roles)
    return uid, await login(http, server.base, name)


def _notify(database_url: str, user_id: int, n: int) -> list[int]:
    """n deals owned by user_id, one transaction each; their notification ids, oldest first."""
    for i in range(n):
        insert_deal(database_url, f"Deal {i}", user_id, 100 + i)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id FROM pgbell.notifications WHERE user_id = %s ORDER BY id", (str(user_id),)
        ).fetchall()
    return [r[0] for r in rows]


# --- Errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"", b"[1, 2]", b'"a string"', b"\xff\xfe", b'{"username": "a",}'],
    ids=["broken", "empty", "array", "string", "not-utf8", "trailing-comma"],
)
async def test_malformed_json_body_is_invalid_request(server, http, database_url, raw):
    _, token = await _user(http, server, database_url)
    for path, tok in (("/auth/login", None), ("/deals", token)):
        status, body = await rest(
            http,
            "POST",
            server.base + path,
            token=tok,
            data=raw,
            headers={"Content-Type": "application/json"},
        )
        assert_error(status, body, (400, 422), "invalid_request", "body")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"amount": 1}, "title"),
        ({"title": "", "amount": 1}, "title"),
        ({"title": "x" * 201, "amount": 1}, "title"),
        ({"title": 5, "amount": 1}, "title"),
        ({"title": None, "amount": 1}, "title"),
        ({"title": "Acme"}, "amount"),
        ({"title": "Acme", "amount": -1}, "amount"),
        ({"title": "Acme", "amount": "x"}, "amount"),
        ({"title": "Acme", "amount": "12"}, "amount"),
        ({"title": "Acme", "amount": True}, "amount"),
        ({"title": "Acme", "amount": None}, "amount"),
        ({"title": "Acme", "amount": [1]}, "amount"),
        ({"title": "Acme", "amount": 10**15}, "amount"),
        ({"title": "Acme", "amount": 1, "owner_id": "1"}, "owner_id"),
        ({"title": "Acme", "amount": 1, "owner_id": 0}, "owner_id"),
        ({"title": "Acme", "amount": 1, "owner_id": -3}, "owner_id"),
        ({"title": "Acme", "amount": 1, "owner_id": True}, "owner_id"),
        ({"title": "Acme", "amount": 1, "owner_id": 1.5}, "owner_id"),
        # an unknown owner_id is a manager's 422 and anyone else's 403: test_demo_authz.py
    ],
)
async def test_deal_field_errors_name_the_field(server, http, database_url, payload, field):
    _, token = await _user(http, server, database_url)
    status, body = await rest(http, "POST", f"{server.base}/deals", token=token, json=payload)
    assert_error(status, body, (400, 422), "invalid_request", field)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"title": "Acme", "amount": NaN}',
        b'{"title": "Acme", "amount": Infinity}',
        b'{"title": "Acme", "amount": 1e999}',
    ],
    ids=["NaN", "Infinity", "1e999"],
)
async def test_non_finite_amounts_are_invalid(server, http, database_url, raw):
    _, token = await _user(http, server, database_url)
    status, body = await rest(
        http,
        "POST",
        f"{server.base}/deals",
        token=token,
        data=raw,
        headers={"Content-Type": "application/json"},
    )
    assert_error(status, body, (400, 422), "invalid_request")
    assert "amount" in body["error"]["message"] or "body" in body["error"]["message"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": -1}, "amount"),
        ({"amount": "x"}, "amount"),
        ({"amount": 0.001}, "amount"),
    ],
)
async def test_payment_amount_errors_name_the_field(server, http, database_url, payload, field):
    uid, token = await _user(http, server, database_url)
    deal_id = insert_deal(database_url, "Acme", uid)
    status, body = await rest(
        http, "POST", f"{server.base}/deals/{deal_id}/payments", token=token, json=payload
    )
    assert_error(status, body, (400, 422), "invalid_request", field)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("limit=1.5", "limit"),
        ("before=abc", "before"),
        ("before=0", "before"),
        ("before=99999999999999999999999", "before"),
        ("unread=maybe", "unread"),
    ],
)
async def test_query_parameter_errors_name_the_field(server, http, database_url, query, field):
    _, token = await _user(http, server, database_url)
    status, body = await rest(http, "GET", f"{server.base}/notifications?{query}", token=token)
    assert_error(status, body, (400, 422), "invalid_request", field)


async def test_login_field_errors_name_the_field(server, http, database_url):
    for payload, field in (
        ({"password": "pw"}, "username"),
        ({"username": "ann"}, "password"),
        ({"username": 7, "password": "pw"}, "username"),
        ({"username": "ann", "password": ["pw"]}, "password"),
    ):
        status, body = await rest(http, "POST", f"{server.base}/auth/login", json=payload)
        assert_error(status, body, (400, 422), "invalid_request", field)


async def test_unknown_ids_are_404_not_found(server, http, database_url):
    _, token = await _user(http, server, database_url)
    for method, path in (
        ("POST", "/notifications/999999/read"),
        ("POST", "/deals/999999/payments"),
    ):
        kwargs = {"json": {"amount": 5}} if "payments" in path else {}
        status, body = await rest(http, method, server.base + path, token=token, **kwargs)
        assert_error(status, body, 404, "not_found")


async def test_another_users_notification_is_404_and_stays_unread(server, http, database_url):
    ann, _ = await _user(http, server, database_url, "ann")
    _, bob_token = await _user(http, server, database_url, "bob")
    (note_id,) = _notify(database_url, ann, 1)

    status, body = await rest(
        http, "POST", f"{server.base}/notifications/{note_id}/read", token=bob_token
    )
    assert_error(status, body, 404, "not_found")
    # exactly what an id that does not exist gets
    status, unknown = await rest(
        http, "POST", f"{server.base}/notifications/{note_id + 1000}/read", token=bob_token
    )
    assert (status, unknown) == (404, body)
    with psycopg.connect(database_url) as conn:
        read_at = conn.execute(
            "SELECT read_at FROM pgbell.notifications WHERE id = %s", (note_id,)
        ).fetchone()[0]
    assert read_at is None, "bob's attempt marked ann's notification read"


def _deal_body(size: int) -> bytes:
    """A deal of exactly `size` bytes, its title too long to be valid."""
    frame = b'{"title": "", "amount": 1}'
    return frame[:11] + b"x" * (size - len(frame)) + frame[11:]


@pytest.mark.parametrize(
    "path",
    ["/deals", "/auth/login"],
)
async def test_body_over_the_limit_is_413_payload_too_large(
    server, http, database_url, settings, path
):
    _, token = await _user(http, server, database_url)
    limit = settings.max_body_bytes
    assert limit == 64 * 1024, "PGBELL_MAX_BODY_BYTES defaults to 64 KiB"
    status, body = await rest(
        http, "POST", server.base + path, token=token, data=_deal_body(limit + 1)
    )
    assert_error(status, body, 413, "payload_too_large")


async def test_body_of_exactly_the_limit_is_read(server, http, database_url, settings):
    _, token = await _user(http, server, database_url)
    body = _deal_body(settings.max_body_bytes)
    assert len(body) == settings.max_body_bytes
    status, answer = await rest(http, "POST", f"{server.base}/deals", token=token, data=body)
    assert_error(status, answer, 422, "invalid_request", "title")


async def test_unknown_route_and_wrong_method_answer_json(server, http):
    status, body = await rest(http, "GET", f"{server.base}/no/such/route")
    assert_error(status, body, 404, "not_found")
    status, body = await rest(http, "DELETE", f"{server.base}/notifications/read-all")
    assert status == 405 and set(body) == {"error"}, body


def _hs512(uid: int) -> str:
    """The right secret, the wrong algorithm (pyjwt warns the key is short for it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        return jwt.encode({"sub": str(uid), "exp": 2**40}, JWT_SECRET, algorithm="HS512")


def _malformed_tokens(uid: int) -> dict[str, dict[str, str]]:
    good = mint(uid)
    return {
        "missing": {},
        "empty-bearer": {"Authorization": "Bearer "},
        "basic-scheme": {"Authorization": "Basic YW5uOnB3"},
        "no-scheme": {"Authorization": good},
        "garbage": {"Authorization": "Bearer not.a.jwt"},
        "bad-signature": {"Authorization": f"Bearer {mint(uid, secret='another-' + 'y' * 32)}"},
        "tampered": {"Authorization": f"Bearer {good[:-2]}{'AA' if good[-2:] != 'AA' else 'BB'}"},
        "alg-none": {
            "Authorization": "Bearer "
            + jwt.encode({"sub": str(uid), "exp": 2**40}, None, algorithm="none")
        },
        "hs512": {"Authorization": f"Bearer {_hs512(uid)}"},
        "no-exp": {
            "Authorization": "Bearer "
            + jwt.encode({"sub": str(uid)}, JWT_SECRET, algorithm="HS256")
        },
        "sub-empty": {"Authorization": f"Bearer {mint('')}"},
        "sub-too-long": {"Authorization": f"Bearer {mint('x' * 256)}"},
        "sub-control-char": {"Authorization": f"Bearer {mint('ann' + chr(10))}"},
        "sub-boolean": {"Authorization": f"Bearer {mint(1, sub=True)}"},
    }


async def test_missing_malformed_badly_signed_or_alg_none_tokens_are_401(
    server, http, database_url
):
    uid = add_user(database_url, "ann")
    for name, headers in _malformed_tokens(uid).items():
        for method, path in (
            ("GET", "/notifications"),
            ("GET", "/notifications/unread-count"),
            ("POST", "/notifications/read-all"),
            ("POST", "/deals"),
        ):
            status, body = await rest(
                http, method, server.base + path, headers=headers, json={"title": "x", "amount": 1}
            )
            assert status == 401, f"{name} token on {method} {path}: {status} {body}"
            assert_error(status, body, 401, "unauthorized")


@pytest.mark.parametrize(
    "subject", ["ann", "99999999999999999999", "0", "424242", "9f1c0b3e-5d2a-4c1e"]
)
async def test_any_text_subject_is_a_recipient_but_not_a_demo_user(
    server, http, database_url, subject
):
    """v2: recipients are the application's ids as text; the demo's deals
    are for pgbell's own users only."""
    deal_id = insert_deal(database_url, "Acme", add_user(database_url, "ann"))
    token = mint(subject)
    status, body = await rest(http, "GET", f"{server.base}/notifications", token=token)
    assert (status, body["items"], body["unread_count"]) == (200, [], 0), body
    for method, path, payload in (
        ("POST", "/deals", {"title": "x", "amount": 1}),
        ("GET", f"/deals/{deal_id}", None),
        ("POST", f"/deals/{deal_id}/payments", {"amount": 1}),
    ):
        status, body = await rest(http, method, server.base + path, token=token, json=payload)
        assert_error(status, body, 403, "forbidden")


async def test_expired_token_is_401_token_expired(server, http, database_url):
    uid = add_user(database_url, "ann")
    status, body = await rest(
        http, "GET", f"{server.base}/notifications", token=mint(uid, expires_in=-30)
    )
    assert_error(status, body, 401, "token_expired")


HOSTILE = [
    ("POST", "/deals", {"title": "nul\u0000byte", "amount": 1}),
    ("POST", "/deals", {"title": "lone \ud800 surrogate", "amount": 1}),
    ("POST", "/deals", {"title": "Acme", "amount": 10**400}),
    ("POST", "/deals", {"title": "Acme", "amount": 999_999_999_999.999}),
    ("POST", "/deals", {"title": "Acme", "amount": 1e-300}),
    ("POST", "/deals", {"title": "Acme", "amount": 1, "owner_id": 2**63}),
    ("POST", "/deals", {"title": "Acme", "amount": 1, "owner_id": 2**63 - 1}),
    ("POST", "/deals", {"title": "\U0001f600" * 200, "amount": 1}),
    ("POST", "/deals/2/payments", {"amount": 10**400}),
    ("POST", "/deals/99999999999999999999/payments", {"amount": 1}),
    ("POST", "/deals/%C2%B2/payments", {"amount": 1}),
    ("POST", "/deals/-1/payments", {"amount": 1}),
    ("POST", "/notifications/%C2%B2/read", None),
    ("POST", "/notifications/%D9%A1/read", None),
    ("POST", "/notifications/9223372036854775807/read", None),
    ("POST", "/notifications/1e3/read", None),
    ("GET", "/notifications?limit=%C2%B2", None),
    ("GET", "/notifications?before=%C2%B2", None),
    ("GET", "/notifications?before=9223372036854775807", None),
    ("GET", "/notifications?unread=%00", None),
    ("GET", "/notifications?limit=10&limit=x", None),
    ("POST", "/auth/login", {"username": "nul\u0000", "password": "pw"}),
    ("POST", "/auth/login", {"username": "\udfff", "password": "pw"}),
    ("POST", "/auth/login", {"username": "ann", "password": "\u0000"}),
    ("PUT", "/preferences", {"kinds": {"nul\u0000": {"muted": True}}}),
    ("PUT", "/preferences", {"kinds": {"\ud800": {"muted": True}}}),
    ("PUT", "/preferences", {"min_priority": "\u0000"}),
    ("PUT", "/preferences", {"kinds": []}),
    ("PUT", "/preferences", {"kinds": {"deal_created": 5}}),
    ("POST", "/notifications/%C2%B2/archive", None),
    ("GET", "/deals/%C2%B2", None),
    ("GET", "/deals/99999999999999999", None),
]


async def test_no_hostile_input_gets_a_5xx(server, http, database_url):
    uid, token = await _user(http, server, database_url)
    insert_deal(database_url, "Acme", uid)
    failures = []
    for method, path, payload in HOSTILE:
        kwargs = {"json": payload} if payload is not None else {}
        status, body = await rest(http, method, server.base + path, token=token, **kwargs)
        if status >= 500 or "error" not in body and status >= 400:
            failures.append(f"{method} {path} {payload!r:.60}: {status} {body}")
    assert not failures, "\n".join(failures)


# --- REST answers ---------------------------------------------------------


async def test_login_answers_token_type_expiry_and_user(server, http, database_url):
    uid = add_user(database_url, "ann", ("member", "manager"))
    status, body = await rest(
        http, "POST", f"{server.base}/auth/login", json={"username": "ann", "password": "pw"}
    )
    assert status == 200, body
    assert set(body) >= {"token", "token_type", "expires_in", "user"}
    assert body["token_type"] == "Bearer"
    assert isinstance(body["expires_in"], int) and body["expires_in"] > 0
    assert body["user"] == {"id": uid, "username": "ann", "roles": ["member", "manager"]}
    assert body["token"].count(".") == 2
    # the token is good for the rest of the API
    status, count = await rest(
        http, "GET", f"{server.base}/notifications/unread-count", token=body["token"]
    )
    assert (status, count) == (200, {"unread_count": 0})


async def test_unknown_user_and_wrong_password_get_one_answer(server, http, database_url):
    add_user(database_url, "ann")
    answers = []
    for payload in (
        {"username": "ann", "password": "wrong"},
        {"username": "zed", "password": "pw"},
    ):
        status, body = await rest(http, "POST", f"{server.base}/auth/login", json=payload)
        assert_error(status, body, 401, "invalid_credentials")
        answers.append(body)
    assert answers[0] == answers[1]


async def test_list_is_newest_first_with_the_notification_shape(server, http, database_url):
    uid, token = await _user(http, server, database_url)
    ids = _notify(database_url, uid, 3)
    status, body = await rest(http, "GET", f"{server.base}/notifications", token=token)
    assert status == 200, body
    assert set(body) == {"items", "unread_count", "next_before"}
    assert [n["id"] for n in body["items"]] == ids[::-1]
    assert body["unread_count"] == 3 and body["next_before"] is None
    note = body["items"][0]
    assert set(note) == NOTIFICATION_KEYS
    assert note["kind"] == "deal_created" and note["priority"] in (
        "low",
        "normal",
        "high",
        "urgent",
    )
    assert note["title"] == "New deal: Deal 2" and "Deal 2" in note["body"]
    assert note["action_url"] == f"/deals/{note['data']['deal_id']}"
    assert note["read_at"] is None
    # RFC 3339 with an offset
    assert note["created_at"][10] == "T" and note["created_at"][-6] in "+-"


async def test_unread_filter_leaves_out_read_ones(server, http, database_url):
    uid, token = await _user(http, server, database_url)
    ids = _notify(database_url, uid, 3)
    status, _ = await rest(http, "POST", f"{server.base}/notifications/{ids[1]}/read", token=token)
    assert status == 200
    _, unread = await rest(http, "GET", f"{server.base}/notifications?unread=true", token=token)
    assert [n["id"] for n in unread["items"]] == [ids[2], ids[0]]
    assert unread["unread_count"] == 2
    _, every = await rest(http, "GET", f"{server.base}/notifications?unread=false", token=token)
    assert [n["id"] for n in every["items"]] == ids[::-1]
    assert every["items"][1]["read_at"] is not None


async def test_before_cursor_pages_through_everything(server, http, database_url):
    uid, token = await _user(http, server, database_url)
    ids = _notify(database_url, uid, 5)
    seen, before, pages = [], None, 0
    while True:
        query = "limit=2" + (f"&before={before}" if before is not None else "")
        status, page = await rest(http, "GET", f"{server.base}/notifications?{query}", token=token)
        assert status == 200, page
        assert len(page["items"]) <= 2
        seen += [n["id"] for n in page["items"]]
        pages += 1
        before = page["next_before"]
        if before is None:
            break
        assert before == page["items"][-1]["id"]
        assert pages < 10, "next_before never ran out"
    assert seen == ids[::-1] and pages == 3


async def test_limit_caps_the_page(server, http, database_url):
    uid, token = await _user(http, server, database_url)
    ids = _notify(database_url, uid, 3)
    _, one = await rest(http, "GET", f"{server.base}/notifications?limit=1", token=token)
    assert [n["id"] for n in one["items"]] == [ids[-1]] and one["next_before"] == ids[-1]
    _, all_ = await rest(http, "GET", f"{server.base}/notifications?limit=100", token=token)
    assert len(all_["items"]) == 3 and all_["next_before"] is None


async def test_unread_count_counts_only_the_callers_unread(server, http, database_url):
    ann, token = await _user(http, server, database_url, "ann")
    bob = add_user(database_url, "bob")
    _notify(database_url, ann, 2)
    _notify(database_url, bob, 3)
    status, body = await rest(http, "GET", f"{server.base}/notifications/unread-count", token=token)
    assert (status, body) == (200, {"unread_count": 2})


async def test_read_one_answers_the_notification_and_the_count(server, http, database_url):
    uid, token = await _user(http, server, database_url)
    ids = _notify(database_url, uid, 2)
    status, body = await rest(
        http, "POST", f"{server.base}/notifications/{ids[0]}/read", token=token
    )
    assert status == 200, body
    assert set(body) == {"notification", "unread_count"}
    assert set(body["notification"]) == NOTIFICATION_KEYS
    assert body["notification"]["id"] == ids[0]
    assert body["notification"]["read_at"] is not None
    assert body["unread_count"] == 1
    # reading it again changes nothing and answers the same
    status, again = await rest(
        http, "POST", f"{server.base}/notifications/{ids[0]}/read", token=token
    )
    assert status == 200 and again == body


async def test_read_all_answers_updated_and_zero(server, http, database_url):
    uid, token = await _user(http, server, database_url)
    _notify(database_url, uid, 3)
    status, body = await rest(http, "POST", f"{server.base}/notifications/read-all", token=token)
    assert (status, body) == (200, {"updated": 3, "unread_count": 0})
    status, body = await rest(http, "POST", f"{server.base}/notifications/read-all", token=token)
    assert (status, body) == (200, {"updated": 0, "unread_count": 0})


async def test_create_deal_is_201_owned_by_the_creator_by_default(server, http, database_url):
    uid, token = await _user(http, server, database_url)
    other = add_user(database_url, "bob")
    status, body = await rest(
        http, "POST", f"{server.base}/deals", token=token, json={"title": "Acme", "amount": 12.5}
    )
    assert status == 201, body
    deal = body["deal"]
    assert set(deal) >= {"id", "title", "amount", "owner_id", "created_by", "created_at"}
    assert deal["title"] == "Acme" and deal["amount"] == 12.5
    assert deal["owner_id"] == uid and deal["created_by"] == uid
    assert isinstance(deal["id"], int) and deal["created_at"][-6] in "+-"

    # a manager may name another owner (anyone else gets 403: test_demo_authz.py)
    boss, boss_token = await _user(http, server, database_url, "boss", ("manager",))
    status, body = await rest(
        http,
        "POST",
        f"{server.base}/deals",
        token=boss_token,
        json={"title": "For Bob", "amount": 0, "owner_id": other},
    )
    assert status == 201, body
    assert body["deal"]["owner_id"] == other and body["deal"]["created_by"] == boss
    with psycopg.connect(database_url) as conn:
        kinds = conn.execute(
            "SELECT user_id, kind FROM pgbell.notifications ORDER BY id"
        ).fetchall()
    assert kinds[0] == (str(uid), "deal_created")
    assert sorted(kinds[1:]) == sorted([(str(other), "deal_created"), (str(boss), "deal_created")])


async def test_payment_is_201_and_tells_the_owner_with_high_priority(server, http, database_url):
    owner, _ = await _user(http, server, database_url, "owner")
    deal_id = insert_deal(database_url, "Acme", owner)
    # the owner and managers record payments; this manager came after the deal
    _, payer = await _user(http, server, database_url, "payer", ("manager",))
    status, body = await rest(
        http, "POST", f"{server.base}/deals/{deal_id}/payments", token=payer, json={"amount": 99.99}
    )
    assert status == 201, body
    payment = body["payment"]
    assert payment["deal_id"] == deal_id and payment["amount"] == 99.99
    assert isinstance(payment["id"], int)

    owner_token = await login(http, server.base, "owner")
    _, listed = await rest(http, "GET", f"{server.base}/notifications", token=owner_token)
    note = listed["items"][0]
    assert note["kind"] == "payment_received" and note["priority"] == "high"
    assert note["data"]["deal_id"] == deal_id and note["data"]["payment_id"] == payment["id"]
    assert note["action_url"] == f"/deals/{deal_id}" and "Acme" in note["title"] + note["body"]
    _, payer_list = await rest(http, "GET", f"{server.base}/notifications", token=payer)
    assert payer_list["items"] == [], "the payer is not the owner and hears nothing"


async def test_healthz_is_200_once_database_and_listener_are_connected(server, http):
    # the listener connects in the background just after start-up
    async def healthy():
        status, body = await rest(http, "GET", f"{server.base}/healthz")
        return (status, body) if status == 200 else None

    _, body = await wait_until(healthy, "/healthz answering 200 after start-up")
    assert body["status"] == "ok"


async def test_healthz_is_503_while_the_database_refuses_and_recovers(
    server, http, database_url, pg_url
):
    await wait_until(lambda: server.pgbell_app[keys.LISTENER].connected, "listener connected")
    async with database_outage(pg_url, database_url):

        async def unhealthy():
            status, body = await rest(http, "GET", f"{server.base}/healthz")
            return (status, body) if status == 503 else None

        status, body = await wait_until(unhealthy, "/healthz turning 503", timeout=10)
        assert_error(status, {"error": body["error"]}, 503, "unavailable")

    async def healthy():
        status, _ = await rest(http, "GET", f"{server.base}/healthz")
        return status == 200

    await wait_until(healthy, "/healthz back to 200 after the database came back", timeout=15)


async def test_rest_during_a_database_outage_is_503_unavailable_not_500(
    server, http, database_url, pg_url
):
    _, token = await _user(http, server, database_url)
    url = f"{server.base}/notifications/unread-count"
    async with database_outage(pg_url, database_url):
        status, body = await rest(http, "GET", url, token=token)
        assert_error(status, body, 503, "unavailable")
        async with http.post(
            f"{server.base}/deals",
            json={"title": "During", "amount": 1},
            headers={"Authorization": f"Bearer {token}"},
        ) as r:
            assert r.status == 503 and r.headers["Retry-After"].isdigit()

    async def recovered():
        status, _ = await rest(http, "GET", url, token=token)
        return status == 200

    await wait_until(recovered, "REST answering 200 after the database came back", timeout=15)


async def test_every_answer_carries_a_request_id(server, http, database_url):
    _, token = await _user(http, server, database_url)
    mine = {"X-Request-Id": "trace-42", "Authorization": f"Bearer {token}"}
    async with http.get(f"{server.base}/notifications", headers=mine) as r:
        assert r.status == 200 and r.headers["X-Request-Id"] == "trace-42"
    for method, path in (("GET", "/notifications/unread-count"), ("GET", "/no/such/route")):
        async with http.request(method, server.base + path) as r:
            assert r.status in (401, 404)
            assert 0 < len(r.headers.get("X-Request-Id", "")) <= 64, dict(r.headers)
    async with http.get(f"{server.base}/healthz", headers={"X-Request-Id": "x" * 65}) as r:
        assert r.headers["X-Request-Id"] != "x" * 65, "an over-long id is replaced"


async def test_token_of_a_deleted_user_is_401_unauthorized_not_a_5xx(server, http, database_url):
    uid, _ = await _user(http, server, database_url, "ann")
    deal_id = insert_deal(database_url, "Acme", uid)
    gone, token = await _user(http, server, database_url, "gone")
    with psycopg.connect(database_url) as conn:
        conn.execute("DELETE FROM pgbell.users WHERE id = %s", (gone,))
    for method, path, payload in (
        ("GET", "/notifications", None),
        ("POST", "/deals", {"title": "Acme", "amount": 1}),
        ("POST", f"/deals/{deal_id}/payments", {"amount": 1}),
        ("PUT", "/preferences", {"muted": True}),
    ):
        status, body = await rest(http, method, server.base + path, token=token, json=payload)
        assert_error(status, body, 401, "unauthorized")
    # a token pgbell never issued for a user that is not one of pgbell's:
    # a recipient like any other, but the demo's deals are not for it
    status, body = await rest(
        http, "POST", f"{server.base}/deals", token=mint(gone), json={"title": "A", "amount": 1}
    )
    assert_error(status, body, 403, "forbidden")
    # an owner_id that is not a user is a manager's mistake (anyone else may
    # not name another owner at all: 403, test_demo_authz.py)
    boss = add_user(database_url, "boss", ("manager",))
    status, body = await rest(
        http,
        "POST",
        f"{server.base}/deals",
        token=mint(boss),
        json={"title": "Acme", "amount": 1, "owner_id": gone},
    )
    assert_error(status, body, 422, "invalid_request", "owner_id")
