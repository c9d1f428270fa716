"""Who may see and touch a demo deal: its owner, its creator and managers
read it; its owner and managers record payments on it; only managers create
deals for someone else; and one user creates at most
PGBELL_DEALS_PER_MINUTE deals a minute. Anyone else learns nothing: another
user's deal answers exactly as an unknown id does, and a forbidden owner_id
answers the same whether or not that user exists."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from pgbell.demo import deals
from tests.contract_client import assert_error, mint, rest
from tests.support import add_user, insert_deal, login


def _set_roles(database_url: str, user_id: int, roles: list[str]) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE pgbell.users SET roles = %s WHERE id = %s", (roles, user_id))


def _count(database_url: str, query: str, *args: object) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query, args).fetchone()[0]


async def _get(http, server, deal_id: int, token: str) -> tuple[int, dict]:
    return await rest(http, "GET", f"{server.base}/deals/{deal_id}", token=token)


async def _pay(http, server, deal_id: int, token: str, amount: float = 5) -> tuple[int, dict]:
    url = f"{server.base}/deals/{deal_id}/payments"
    return await rest(http, "POST", url, token=token, json={"amount": amount})


async def _create(http, server, token: str, **fields: object) -> tuple[int, dict]:
    body = {"title": "Acme", "amount": 10, **fields}
    return await rest(http, "POST", f"{server.base}/deals", token=token, json=body)


async def test_a_strangers_read_and_payment_answer_as_an_unknown_deal(server, http, database_url):
    ann = add_user(database_url, "ann")
    add_user(database_url, "eve")
    add_user(database_url, "boss", ("manager",))
    deal = insert_deal(database_url, "Ann's secret deal", ann)
    unknown = deal + 1000
    eve = await login(http, server.base, "eve")

    status, body = await _get(http, server, deal, eve)
    assert_error(status, body, 404, "not_found")
    assert (status, body) == await _get(http, server, unknown, eve), "an existence oracle"
    assert "secret" not in str(body)

    status, body = await _pay(http, server, deal, eve)
    assert_error(status, body, 404, "not_found")
    assert (status, body) == await _pay(http, server, unknown, eve), "an existence oracle"
    payments = "SELECT count(*) FROM payments WHERE deal_id = %s"
    assert _count(database_url, payments, deal) == 0, "the stranger's payment was recorded"

    for name in ("ann", "boss"):
        token = await login(http, server.base, name)
        status, body = await _get(http, server, deal, token)
        assert status == 200 and body["deal"]["title"] == "Ann's secret deal", (name, body)
        status, body = await _pay(http, server, deal, token)
        assert status == 201 and body["payment"]["deal_id"] == deal, (name, body)
    assert _count(database_url, payments, deal) == 2


async def test_the_creator_reads_its_deal_but_pays_only_while_a_manager(server, http, database_url):
    ann = add_user(database_url, "ann")
    lead = add_user(database_url, "lead", ("manager",))
    token = await login(http, server.base, "lead")
    status, body = await _create(http, server, token, owner_id=ann)
    assert status == 201, body
    deal = body["deal"]["id"]
    status, body = await _pay(http, server, deal, token)
    assert status == 201, body

    # no longer a manager, from the next request on (the token still says manager)
    _set_roles(database_url, lead, [])
    status, body = await _get(http, server, deal, token)
    assert status == 200 and body["deal"]["created_by"] == lead, body
    status, body = await _pay(http, server, deal, token)
    assert_error(status, body, 403, "forbidden")
    assert _count(database_url, "SELECT count(*) FROM payments WHERE deal_id = %s", deal) == 1


async def test_manager_role_is_read_from_the_users_table_at_request_time(
    server, http, database_url
):
    ann = add_user(database_url, "ann")
    boss = add_user(database_url, "boss", ("manager",))
    rookie = add_user(database_url, "rookie")
    deal = insert_deal(database_url, "Ann's deal", ann)
    boss_token = await login(http, server.base, "boss")
    rookie_token = await login(http, server.base, "rookie")

    _set_roles(database_url, boss, ["sales"])
    status, body = await _get(http, server, deal, boss_token)
    assert_error(status, body, 404, "not_found")
    status, body = await _create(http, server, boss_token, owner_id=ann)
    assert_error(status, body, 403, "forbidden")

    # a roles claim grants nothing: the application's token or pgbell's own
    forged = mint(rookie, roles=["manager"])
    assert_error(*await _get(http, server, deal, forged), 404, "not_found")

    _set_roles(database_url, rookie, ["manager"])
    status, body = await _get(http, server, deal, rookie_token)
    assert status == 200 and body["deal"]["id"] == deal, body


async def test_a_non_manager_naming_another_owner_is_403_whether_or_not_it_exists(
    server, http, database_url
):
    ann = add_user(database_url, "ann")
    bob = add_user(database_url, "bob")
    token = await login(http, server.base, "ann")

    status, existing = await _create(http, server, token, owner_id=bob, title="Pay me here")
    assert_error(status, existing, 403, "forbidden")
    status, missing = await _create(http, server, token, owner_id=bob + 1000, title="Pay me here")
    assert (status, missing) == (403, existing), "an existence oracle on user ids"
    assert _count(database_url, "SELECT count(*) FROM deals") == 0
    notes = "SELECT count(*) FROM pgbell.notifications WHERE user_id = %s"
    assert _count(database_url, notes, str(bob)) == 0, "bob was notified of a forged deal"

    status, body = await _create(http, server, token, owner_id=ann)
    assert status == 201 and body["deal"]["owner_id"] == ann, body


async def test_a_manager_creates_for_another_user_and_gets_422_for_an_unknown_one(
    server, http, database_url
):
    ann = add_user(database_url, "ann")
    boss = add_user(database_url, "boss", ("manager",))
    token = await login(http, server.base, "boss")

    status, body = await _create(http, server, token, owner_id=ann)
    assert status == 201, body
    assert (body["deal"]["owner_id"], body["deal"]["created_by"]) == (ann, boss)

    status, body = await _create(http, server, token, owner_id=ann + 1000)
    assert_error(status, body, 422, "invalid_request", "owner_id")


async def test_a_burst_of_creations_stops_at_the_per_minute_limit(start_server, http, database_url):
    server = await start_server(PGBELL_DEALS_PER_MINUTE="5")
    ann = add_user(database_url, "ann")
    add_user(database_url, "bob")
    ann_token = await login(http, server.base, "ann")
    bob_token = await login(http, server.base, "bob")

    answers = await asyncio.gather(
        *(_create(http, server, ann_token, title=f"Burst {i}") for i in range(10))
    )
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201] * 5 + [429] * 5, statuses
    for status, body in answers:
        if status == 429:
            assert_error(status, body, 429, "rate_limited")
    owned = "SELECT count(*) FROM deals WHERE owner_id = %s"
    assert _count(database_url, owned, ann) == 5

    async with http.post(
        f"{server.base}/deals",
        json={"title": "One more", "amount": 1},
        headers={"Authorization": f"Bearer {ann_token}"},
    ) as r:
        assert r.status == 429, await r.text()
        # a place frees every 60/5 = 12 s
        assert 1 <= int(r.headers["Retry-After"]) <= 12, r.headers["Retry-After"]

    # another user's budget is untouched
    status, body = await _create(http, server, bob_token, title="Bob's")
    assert status == 201, body


def test_the_creation_limit_refills_over_the_minute_and_stays_bounded(monkeypatch):
    now = [1000.0]
    limit = deals.CreationLimit(2, clock=lambda: now[0])
    assert limit.take(1) is None and limit.take(1) is None
    assert limit.take(1) == pytest.approx(30.0), "one place back every 60/2 s"
    assert limit.take(2) is None, "another user has a budget of their own"
    now[0] += 30.5
    assert limit.take(1) is None
    assert limit.take(1) is not None
    assert limit.rejected == 2

    monkeypatch.setattr(deals, "MAX_LIMITED_USERS", 3)
    for user in range(3, 10):
        assert limit.take(user) is None
    assert len(limit) == 3, "the least recently seen users are forgotten past the bound"
    # a minute on, every bucket is full again: nothing left to remember
    now[0] += 60
    assert limit.take(99) is None
    assert len(limit) == 1
