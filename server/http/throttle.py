"""Login throttling: two budgets of failed logins per window, per process.

- per (client address, username), PGBELL_LOGIN_MAX_FAILURES: one attacker
  cannot lock a user out from everywhere, and one user's attacker does not
  spend another user's budget;
- per client address, PGBELL_LOGIN_MAX_FAILURES_PER_ADDRESS, whatever the
  usernames: made-up usernames do not buy an address more guesses.

A login whose budget is spent answers 429 `rate_limited` with Retry-After,
without a password check, until its oldest failure leaves the window
(PGBELL_LOGIN_WINDOW): the right password does not help before then.

An attempt takes its place in both budgets before its password is checked
(begin), as a failure; it is given back when its answer checked no
password (a bad body, a busy server), and on success the (address,
username) slate is wiped while the address keeps its other failures. So N
simultaneous guesses at a limit of L check at most L passwords, and a
client that hangs up mid-check has still spent its attempt.

Per process and in memory: every server of a deployment counts on its
own, which bounds guessing to failures x servers per window. Memory is
bounded: at most MAX_KEYS (address, username) keys and MAX_ADDRESSES
addresses, each holding at most its limit of timestamps; past that the
least recently failed keys are forgotten. Behind a reverse proxy the
address is the client's only if the proxy is in PGBELL_TRUSTED_PROXIES
(http/proxies.py). The middleware that applies it is in http/middleware.py.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

MAX_KEYS = 100_000
MAX_ADDRESSES = 10_000


class Throttled(Exception):
    """A budget is spent; `retry_after` seconds until it has room again."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after:.0f} s")
        self.retry_after = retry_after


class _Budget:
    """At most `limit` failures per key in a sliding window of `window` s."""

    def __init__(
        self, limit: int, window: float, max_keys: int, clock: Callable[[], float]
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[Hashable, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._failures)

    def _recent(self, key: Hashable) -> deque[float] | None:
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

    def retry_after(self, key: Hashable) -> float | None:
        times = self._recent(key)
        if times is None or len(times) < self.limit:
            return None
        return max(0.0, times[0] + self.window - self._clock())

    def spend(self, key: Hashable, at: float) -> None:
        times = self._recent(key)
        if times is None:
            times = self._failures[key] = deque(maxlen=self.limit)
        times.append(at)
        self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def give_back(self, key: Hashable, at: float) -> None:
        times = self._failures.get(key)
        if times is None:
            return  # expired or forgotten meanwhile
        try:
            times.remove(at)
        except ValueError:
            return
        if not times:
            del self._failures[key]

    def clear(self, key: Hashable) -> None:
        self._failures.pop(key, None)


@dataclass(frozen=True)
class Attempt:
    """One login, counted as a failure from begin() on."""

    address: str
    username: str
    at: float


class LoginThrottle:
    def __init__(
        self,
        max_failures: int,
        window: float,
        max_failures_per_address: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._pairs = _Budget(max_failures, window, MAX_KEYS, clock)
        self._addresses = _Budget(max_failures_per_address, window, MAX_ADDRESSES, clock)
        self.rejected = 0  # logins answered 429 by either budget

    def begin(self, address: str, username: str) -> Attempt:
        """Spend one failure of both budgets now, before any await, or raise
        Throttled (counting it in `rejected`) if either is spent already."""
        pair = (address, username)
        waits = (self._pairs.retry_after(pair), self._addresses.retry_after(address))
        spent = [w for w in waits if w is not None]
        if spent:
            self.rejected += 1
            raise Throttled(max(spent))
        attempt = Attempt(address, username, self._clock())
        self._pairs.spend(pair, attempt.at)
        self._addresses.spend(address, attempt.at)
        return attempt

    def give_back(self, attempt: Attempt) -> None:
        """The attempt checked no password: it is no failure after all."""
        self._pairs.give_back((attempt.address, attempt.username), attempt.at)
        self._addresses.give_back(attempt.address, attempt.at)

    def succeeded(self, attempt: Attempt) -> None:
        """The right password: this user's slate at this address is wiped, so
        a user who mistyped is never held up; the address keeps its other
        failures, so one known password cannot reopen it for guessing."""
        self._pairs.clear((attempt.address, attempt.username))
        self._addresses.give_back(attempt.address, attempt.at)

    def keys(self) -> tuple[int, int]:
        """(address, username) keys and addresses held: bounded by the caps."""
        return len(self._pairs), len(self._addresses)
