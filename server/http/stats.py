"""Request counters for /metrics: plain numbers, kept by the middleware."""

from __future__ import annotations

from collections import Counter

from pgbell.bus.histogram import Histogram

# Any other method a client invents is counted as "other": every label of
# these metrics takes a bounded set of values, whatever the requests.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpStats:
    """Requests by method, route pattern (never the raw path) and status, and
    their durations by route pattern, method and status class (2xx, 4xx...)."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.durations: dict[tuple[str, str, str], Histogram] = {}

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        self.requests[(method, route, status)] += 1
        key = (route, method, f"{status // 100}xx")
        hist = self.durations.get(key)
        if hist is None:
            hist = self.durations[key] = Histogram()
        hist.observe(seconds)
