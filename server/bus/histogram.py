"""A Prometheus-style histogram: plain numbers, no I/O, no dependencies, so
the hub can time deliveries without knowing about PostgreSQL or HTTP."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable

# Seconds; delivery is usually milliseconds, the tail is what matters.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def format_number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


class Histogram:
    """Cumulative buckets, a sum and a count, as Prometheus expects them."""

    def __init__(self, buckets: Iterable[float] = LATENCY_BUCKETS) -> None:
        self.bounds = tuple(sorted(buckets))
        self._counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        value = max(value, 0.0)
        self._counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def observe_many(self, values: list[float]) -> None:
        """observe() each of `values`, at half the cost per value."""
        counts, bounds, total = self._counts, self.bounds, 0.0
        for value in values:
            if value < 0.0:
                value = 0.0
            counts[bisect.bisect_left(bounds, value)] += 1
            total += value
        self.sum += total
        self.count += len(values)

    def cumulative(self) -> list[tuple[str, int]]:
        out, running = [], 0
        for bound, n in zip((*self.bounds, math.inf), self._counts, strict=True):
            running += n
            out.append(("+Inf" if bound == math.inf else format_number(bound), running))
        return out
