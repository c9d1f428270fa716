"""Login throttling: failed logins per (address, username) get 429 after a
limit; the window, success and other usernames are honoured."""

from __future__ import annotations

from server.app import create_app
from server.config import Settings
from server.throttle import LoginThrottle
from tests.support import JWT_SECRET, add_user


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
    database_url, aiohttp_server, http
):
    add_user(database_url, "guessed", password="right")
    add_user(database_url, "neighbour", password="right")
    settings = Settings.from_env(
        {
            "DATABASE_URL": database_url,
            "PGBELL_JWT_SECRET": JWT_SECRET,
            "PGBELL_POLL_INTERVAL": "60",
            "PGBELL_LOGIN_MAX_FAILURES": "3",
            "PGBELL_LOGIN_WINDOW": "120",
        }
    )
    srv = await aiohttp_server(create_app(settings))
    url = str(srv.make_url("/auth/login"))

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
