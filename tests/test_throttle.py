"""Login throttling: failed logins per (address, username) get 429 after a
limit; the window, success and other usernames are honoured."""

from __future__ import annotations

import pytest

from pgbell.config import ConfigError, Settings
from pgbell.http.throttle import LoginThrottle
from tests.support import add_user


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_within_the_window_block_until_it_passes():
    clock = Clock()
    t = LoginThrottle(max_failures=3, window=60, clock=clock)
    key = ("10.0.0.1", "alice")
    for _ in range(3):
        assert t.retry_after(key) is None
        t.failed(key)
        clock.now += 1
    assert t.retry_after(key) == 57  # now 1003; the first failure leaves the window at 1060
    assert t.retry_after(("10.0.0.2", "alice")) is None
    assert t.retry_after(("10.0.0.1", "bob")) is None
    clock.now = 1060
    assert t.retry_after(key) is None


def test_success_clears_the_failures():
    t = LoginThrottle(max_failures=2, window=60, clock=Clock())
    key = ("10.0.0.1", "alice")
    t.failed(key)
    t.succeeded(key)
    t.failed(key)
    assert t.retry_after(key) is None


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
