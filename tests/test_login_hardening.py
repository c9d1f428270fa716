"""Login cannot stall the server, and guessing is bounded.

- a password check runs off the event loop: the server keeps answering
  (health, live frames) while one is under way;
- simultaneous guesses take their place in the budget before any is
  checked, so a burst checks no more passwords than the limit allows;
- a client address has a budget of its own, whatever usernames it tries;
- at most PGBELL_LOGIN_MAX_PENDING checks wait or run; more are refused at
  once.

The ordering proofs watch argon2 itself: a probe around
PasswordHasher.verify marks when a real check begins and ends, and the
stored hash is made slow on purpose (argon2 verifies with the parameters
embedded in the hash), so that "while the check runs" is a wide span.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

import aiohttp
import psycopg
import pytest
from argon2 import PasswordHasher

from tests.support import add_user, insert_deal, login, next_frame, wait_until

# About a second of argon2 on one core of the test machine.
SLOW = PasswordHasher(time_cost=16, memory_cost=64 * 1024)


def add_slow_user(db_url: str, name: str, password: str) -> int:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "INSERT INTO pgbell.users (username, password_hash) VALUES (%s, %s) RETURNING id",
            (name, SLOW.hash(password)),
        ).fetchone()[0]


class Checks:
    """What argon2 did: checks begun and ended (set from whichever thread ran them)."""

    def __init__(self) -> None:
        self.begun = 0
        self.ended = 0
        self._lock = threading.Lock()

    def begin(self) -> None:
        with self._lock:
            self.begun += 1

    def end(self) -> None:
        with self._lock:
            self.ended += 1


@pytest.fixture
def checks(monkeypatch) -> Checks:
    """Counts every real argon2 verification from now on (it still runs)."""
    seen = Checks()
    real = PasswordHasher.verify

    def verify(self, hash, password):  # noqa: A002 - argon2's own parameter name
        seen.begin()
        try:
            return real(self, hash, password)
        finally:
            seen.end()

    monkeypatch.setattr(PasswordHasher, "verify", verify)
    return seen


async def _post_login(http, base: str, username: str, password: str, **headers: str):
    async with http.post(
        f"{base}/auth/login", json={"username": username, "password": password}, headers=headers
    ) as r:
        return r.status, await r.json(), r.headers.get("Retry-After")


async def test_the_server_keeps_answering_while_a_password_is_checked(
    database_url, server, http, checks
):
    watcher = add_user(database_url, "watcher")
    add_slow_user(database_url, "slow", "right")
    ws = await http.ws_connect(
        f"{server.ws_base}/ws?token={await login(http, server.base, 'watcher')}"
    )
    await next_frame(ws, "snapshot")
    done_before = checks.ended  # the watcher's own login

    slow_login = asyncio.create_task(_post_login(http, server.base, "slow", "right"))
    await wait_until(lambda: checks.begun > done_before, "the slow user's password check to begin")

    async with http.get(f"{server.base}/healthz") as r:
        assert r.status == 200
    assert checks.ended == done_before, "/healthz was answered only after the check ended"

    deal = await asyncio.to_thread(insert_deal, database_url, "During a login", watcher)
    frame = await next_frame(ws, "notification", where="while a password is checked")
    assert frame["notification"]["data"]["deal_id"] == deal
    assert checks.ended == done_before, "the live frame came only after the check ended"

    status, body, _ = await asyncio.wait_for(slow_login, 30)
    assert status == 200, body
    await ws.close()


async def test_simultaneous_wrong_guesses_check_no_more_than_the_limit(
    database_url, start_server, http, checks
):
    add_user(database_url, "target", password="right")
    srv = await start_server(PGBELL_LOGIN_MAX_FAILURES="3", PGBELL_LOGIN_MAX_PENDING="100")
    answers = await asyncio.gather(
        *(_post_login(http, srv.base, "target", f"guess{i}") for i in range(12))
    )
    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [401] * 3 + [429] * 9, statuses
    assert checks.begun == 3, "a refused guess must not be checked"
    for status, body, retry_after in answers:
        if status == 429:
            assert body["error"]["code"] == "rate_limited"
            assert retry_after is not None and int(retry_after) >= 1


async def test_one_address_has_a_budget_whatever_the_usernames(
    database_url, start_server, http, checks
):
    add_user(database_url, "real", password="right")
    srv = await start_server(
        PGBELL_TRUSTED_PROXIES="127.0.0.1",
        PGBELL_LOGIN_MAX_FAILURES_PER_ADDRESS="5",
        PGBELL_LOGIN_WINDOW="600",
    )
    attacker = {"X-Forwarded-For": "203.0.113.7"}
    bystander = {"X-Forwarded-For": "198.51.100.20"}

    for i in range(5):
        status, body, _ = await _post_login(http, srv.base, f"made-up-{i}", "pw", **attacker)
        assert (status, body["error"]["code"]) == (401, "invalid_credentials"), (i, body)
    assert checks.begun == 5, "an unknown username must cost a check, as a known one does"
    status, body, retry_after = await _post_login(http, srv.base, "made-up-5", "pw", **attacker)
    assert (status, body["error"]["code"]) == (429, "rate_limited"), body
    assert retry_after is not None and 1 <= int(retry_after) <= 600
    # the right password does not reopen the address before the window has passed
    status, body, _ = await _post_login(http, srv.base, "real", "right", **attacker)
    assert status == 429, body
    assert checks.begun == 5, "a refused login must not be checked"

    # another client behind the same proxy is not held up
    status, body, _ = await _post_login(http, srv.base, "real", "right", **bystander)
    assert status == 200, body
    status, body, _ = await _post_login(http, srv.base, "made-up-0", "pw", **bystander)
    assert status == 401, body


async def test_logins_beyond_max_pending_are_refused_at_once(
    database_url, start_server, http, checks
):
    add_slow_user(database_url, "slow", "right")
    srv = await start_server(PGBELL_LOGIN_MAX_PENDING="2", PGBELL_LOGIN_THREADS="1")
    refused_while_checking: list[bool] = []

    async def attempt():
        status, body, retry_after = await _post_login(http, srv.base, "slow", "right")
        if status == 429:
            refused_while_checking.append(checks.ended == 0)
            assert body["error"]["code"] == "rate_limited", body
            assert retry_after is not None and int(retry_after) >= 1
        return status

    statuses = await asyncio.wait_for(asyncio.gather(*(attempt() for _ in range(5))), 60)
    assert sorted(statuses) == [200, 200, 429, 429, 429], statuses
    assert refused_while_checking == [True] * 3, "a refused login waited for a password check"
    assert checks.begun == 2, "a refused login must not be checked"


async def test_a_refused_login_does_not_spend_the_budget(database_url, start_server, http):
    """Only a checked password counts: answers that check none give the attempt back."""
    add_user(database_url, "careful", password="right")
    srv = await start_server(PGBELL_LOGIN_MAX_FAILURES="2")
    for _ in range(3):
        async with http.post(f"{srv.base}/auth/login", json={"username": "careful"}) as r:
            assert r.status == 422
    assert [(await _post_login(http, srv.base, "careful", "wrong"))[0] for _ in range(2)] == [
        401,
        401,
    ]
    status, _, _ = await _post_login(http, srv.base, "careful", "wrong")
    assert status == 429


async def test_a_client_that_hangs_up_mid_check_still_spends_its_attempt(
    database_url, start_server, checks
):
    """Giving up on the answer must not get a guess for free."""
    add_slow_user(database_url, "slow", "right")
    srv = await start_server(PGBELL_LOGIN_MAX_FAILURES="1")
    async with aiohttp.ClientSession() as quitter:
        task = asyncio.create_task(_post_login(quitter, srv.base, "slow", "wrong"))
        await wait_until(lambda: checks.begun == 1, "the first guess's check to begin")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await wait_until(lambda: checks.ended == 1, "the abandoned check to end")
    async with aiohttp.ClientSession() as http:
        status, body, _ = await _post_login(http, srv.base, "slow", "right")
    assert status == 429, body
