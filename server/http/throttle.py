"""Login throttling: too many failed logins for one username from one
address answer 429 `rate_limited` until the window has passed.

Per process and in memory: every server of a deployment counts on its
own, which bounds guessing to failures x servers per window. Only failures
count, and a successful login clears the slate, so a user who mistypes
once is never held up. The key is (client address, username): one attacker
cannot lock a user out from everywhere, and one user's attacker does not
spend another user's budget. Behind a reverse proxy the address is the
client's only if the proxy is in PGBELL_TRUSTED_PROXIES (http/proxies.py).
The middleware that applies it is in http/middleware.py.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque

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
