"""Login throttling: too many failed logins for one username from one
address answer 429 `rate_limited` until the window has passed.

Per process and in memory: every server of a deployment counts on its
own, which bounds guessing to failures x servers per window. Only failures
count, and a successful login clears the slate, so a user who mistypes
once is never held up. The key is (client address, username): one attacker
cannot lock a user out from everywhere, and one user's attacker does not
spend another user's budget. Behind a reverse proxy the address is the
client's only if the proxy is in PGBELL_TRUSTED_PROXIES (server/proxies.py).
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict, deque

from aiohttp import web

from server import keys
from server.errors import ApiError, error_response
from server.proxies import client_address

LOGIN_PATH = "/auth/login"
MAX_KEYS = 100_000  # oldest keys are forgotten past this, bounding memory


class LoginThrottle:
    def __init__(self, max_failures: int, window: float, clock=time.monotonic) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self.rejected = 0

    def _recent(self, key: tuple[str, str]) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        horizon = self._clock() - self.window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, key: tuple[str, str]) -> float | None:
        """Seconds until `key` may try again, or None if it may now."""
        times = self._recent(key)
        if times is None or len(times) < self.max_failures:
            return None
        return max(0.0, times[0] + self.window - self._clock())

    def failed(self, key: tuple[str, str]) -> None:
        times = self._recent(key)
        if times is None:
            times = self._failures[key] = deque(maxlen=self.max_failures)
        times.append(self._clock())
        self._failures.move_to_end(key)
        while len(self._failures) > MAX_KEYS:
            self._failures.popitem(last=False)

    def succeeded(self, key: tuple[str, str]) -> None:
        self._failures.pop(key, None)


async def _username(request: web.Request) -> str | None:
    # request.read() raises 413 past the size limit: that propagates, to be
    # answered by the error middleware outside this one.
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None  # the handler answers the bad body itself
    name = body.get("username") if isinstance(body, dict) else None
    return name.casefold()[:150] if isinstance(name, str) else None


@web.middleware
async def login_throttle_middleware(request: web.Request, handler):
    """Runs inside the error middleware: failures arrive as ApiError."""
    if request.method != "POST" or request.path != LOGIN_PATH:
        return await handler(request)
    throttle = request.app[keys.LOGIN_THROTTLE]
    username = await _username(request)
    if username is None:
        return await handler(request)
    key = (client_address(request), username)
    wait = throttle.retry_after(key)
    if wait is not None:
        throttle.rejected += 1
        response = error_response(
            429, "rate_limited", "too many failed logins; try again in a few minutes"
        )
        response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return response
    try:
        response = await handler(request)
    except ApiError as e:
        if e.status == 401:
            throttle.failed(key)
        raise
    if response.status == 200:
        throttle.succeeded(key)
    return response
