"""Login throttling: failed logins per (address, username) and per address
get 429 after a limit; the window, success and other usernames are honoured,
and attempts count before their answer (tests/test_login_hardening.py has
the concurrent cases)."""

from __future__ import annotations

import pytest

from pgbell.config import ConfigError, Settings
from pgbell.http import throttle
from pgbell.http.throttle import LoginThrottle, Throttled
from tests.support import add_user


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _spend(t: LoginThrottle, address: str, username: str, times: int, clock: Clock) -> None:
    """`times` failed logins, one a second."""
    for _ in range(times):
        t.begin(address, username)
        clock.now += 1


def test_failures_within_the_window_block_until_it_passes():
    clock = Clock()
    t = LoginThrottle(max_failures=3, window=60, max_failures_per_address=100, clock=clock)
    _spend(t, "10.0.0.1", "alice", 3, clock)
    with pytest.raises(Throttled) as refused:
        t.begin("10.0.0.1", "alice")
    assert refused.value.retry_after == 57  # now 1003; the first failure leaves at 1060
    assert t.rejected == 1
    t.begin("10.0.0.2", "alice")  # another address
    t.begin("10.0.0.1", "bob")  # another user
    clock.now = 1060
    t.begin("10.0.0.1", "alice")


def test_success_clears_the_users_failures_but_not_the_addresss():
    clock = Clock()
    t = LoginThrottle(max_failures=2, window=60, max_failures_per_address=3, clock=clock)
    _spend(t, "10.0.0.1", "alice", 1, clock)
    t.succeeded(t.begin("10.0.0.1", "alice"))
    _spend(t, "10.0.0.1", "alice", 1, clock)  # one failure since the success: room for one more
    # the success was given back to the address, the two failures were not
    t.begin("10.0.0.1", "bob")
    with pytest.raises(Throttled):
        t.begin("10.0.0.1", "carol")


def test_an_attempt_is_counted_before_its_answer_and_given_back_if_nothing_was_checked():
    clock = Clock()
    t = LoginThrottle(max_failures=2, window=60, max_failures_per_address=100, clock=clock)
    first = t.begin("10.0.0.1", "alice")
    t.begin("10.0.0.1", "alice")  # both still being checked
    with pytest.raises(Throttled):
        t.begin("10.0.0.1", "alice")
    t.give_back(first)  # say the first was refused before its check
    t.begin("10.0.0.1", "alice")


def test_made_up_usernames_spend_the_address_budget_until_the_window_passes():
    clock = Clock()
    t = LoginThrottle(max_failures=10, window=60, max_failures_per_address=4, clock=clock)
    for i in range(4):
        t.begin("10.0.0.1", f"made-up-{i}")
        clock.now += 1
    with pytest.raises(Throttled) as refused:
        t.begin("10.0.0.1", "alice")  # a real user, from that address: held up too
    assert refused.value.retry_after == 56
    t.begin("10.0.0.2", "made-up-0")  # another address has its own budget
    clock.now = 1060
    t.begin("10.0.0.1", "alice")


def test_memory_is_bounded_by_the_key_caps(monkeypatch):
    monkeypatch.setattr(throttle, "MAX_KEYS", 5)
    monkeypatch.setattr(throttle, "MAX_ADDRESSES", 3)
    clock = Clock()
    t = LoginThrottle(max_failures=2, window=60, max_failures_per_address=50, clock=clock)
    for i in range(20):
        t.begin(f"10.0.0.{i % 4}", f"user{i}")
    assert t.keys() == (5, 3)


async def test_too_many_wrong_passwords_answer_429_with_retry_after(
    database_url, start_server, http
):
    add_user(database_url, "guessed", password="right")
    add_user(database_url, "neighbour", password="right")
    srv = await start_server(PGBELL_LOGIN_MAX_FAILURES="3", PGBELL_LOGIN_WINDOW="120")
    url = f"{srv.base}/auth/login"

    async def attempt(username: str, password: str):
        async with http.post(url, json={"username": username, "password": password}) as r:
            return r.status, await r.json(), r.headers.get("Retry-After")

    for i in range(3):
        status, body, _ = await attempt("guessed", f"wrong{i}")
        assert (status, body["error"]["code"]) == (401, "invalid_credentials")
    # the right password no longer helps: that is the point
    status, body, retry_after = await attempt("Guessed", "right")
    assert (status, body["error"]["code"]) == (429, "rate_limited"), body
    assert retry_after is not None and 1 <= int(retry_after) <= 120
    # another user from the same address is not held up
    status, body, _ = await attempt("neighbour", "right")
    assert status == 200, body
    # a body the throttle cannot read still gets the handler's own answer
    async with http.post(url, data=b"{not json") as r:
        assert r.status == 400
        assert (await r.json())["error"]["code"] == "invalid_request"


async def _throttled_server(start_server, **env):
    srv = await start_server(PGBELL_LOGIN_MAX_FAILURES="2", **env)
    return f"{srv.base}/auth/login"


async def _status(http, url: str, forwarded_for: str) -> int:
    async with http.post(
        url,
        json={"username": "behind", "password": "wrong"},
        headers={"X-Forwarded-For": forwarded_for},
    ) as r:
        return r.status


async def test_behind_a_trusted_proxy_each_client_has_its_own_budget(
    database_url, start_server, http
):
    add_user(database_url, "behind", password="right")
    url = await _throttled_server(start_server, PGBELL_TRUSTED_PROXIES="127.0.0.1, 10.0.0.0/8")
    # the client, then two proxies pgbell trusts (the loopback peer is a third)
    chain = "203.0.113.5, 10.1.2.3"
    assert [await _status(http, url, chain) for _ in range(3)] == [401, 401, 429]
    assert await _status(http, url, "203.0.113.6, 10.1.2.3") == 401, "another client"
    # a client cannot escape by prepending addresses: the rightmost untrusted one counts
    assert await _status(http, url, "198.51.100.1, 203.0.113.5, 10.1.2.3") == 429


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(database_url, start_server, http):
    add_user(database_url, "behind", password="right")
    url = await _throttled_server(start_server)
    statuses = [await _status(http, url, f"203.0.113.{i}") for i in range(3)]
    assert statuses == [401, 401, 429], "a forged X-Forwarded-For must not reset the budget"


def test_malformed_trusted_proxies_stop_the_server_naming_the_variable():
    with pytest.raises(ConfigError, match="PGBELL_TRUSTED_PROXIES: not an IP address"):
        Settings.from_env(
            {
                "DATABASE_URL": "postgresql://localhost/x",
                "PGBELL_TRUSTED_PROXIES": "10.0.0.0/8, proxy.internal",
            }
        )
