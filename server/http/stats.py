"""Request counters for /metrics: plain numbers, kept by the middleware."""

from __future__ import annotations

from collections import Counter

from pgbell.bus.histogram import Histogram


class HttpStats:
    """Requests by method, route pattern (never the raw path) and status."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.duration = Histogram()
