"""Join what was written with what arrived, and summarise latencies.

Every successful deal is owed one frame on every connection of its owner
and of every manager. A frame is matched by notification.data.deal_id and
the receiving (user, connection); a missing one is a loss, a second one a
duplicate, one for a recipient that is owed nothing an extra.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.clients import Frame
from bench.writers import Sent


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary_ms(latencies: list[float]) -> dict[str, float | int | None]:
    values = sorted(latencies)
    out: dict[str, float | int | None] = {"n": len(values)}
    for name, q in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100)):
        v = percentile(values, q)
        out[name] = None if v is None else round(v * 1000, 2)
    return out


@dataclass
class Delivery:
    expected: int = 0
    delivered: int = 0
    duplicates: int = 0
    extras: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds

    @property
    def missing(self) -> int:
        return self.expected - self.delivered


@dataclass
class Joined:
    owner: Delivery
    managers: Delivery
    missing_examples: list[str]  # a few (deal, user, conn) that never arrived

    @property
    def all(self) -> Delivery:
        both = Delivery()
        for d in (self.owner, self.managers):
            both.expected += d.expected
            both.delivered += d.delivered
            both.duplicates += d.duplicates
            both.extras += d.extras
            both.latencies += d.latencies
        return both


def join(
    sent: list[Sent],
    frames_by_deal: dict[int, list[Frame]],
    manager_ids: set[int],
    conns: int,
) -> Joined:
    owner, managers = Delivery(), Delivery()
    examples: list[str] = []
    for deal in sent:
        arrived: dict[tuple[int, int], float] = {}
        for f in frames_by_deal.get(deal.deal_id, ()):
            key = (f.user_id, f.conn)
            target = owner if f.user_id == deal.owner_id else managers
            if f.user_id != deal.owner_id and f.user_id not in manager_ids:
                target.extras += 1
            elif key in arrived:
                target.duplicates += 1
                arrived[key] = min(arrived[key], f.t)
            else:
                arrived[key] = f.t
        recipients = [(deal.owner_id, owner)] + [
            (m, managers) for m in sorted(manager_ids) if m != deal.owner_id
        ]
        for user_id, target in recipients:
            for c in range(conns):
                target.expected += 1
                t = arrived.get((user_id, c))
                if t is None:
                    if len(examples) < 5:
                        examples.append(f"deal {deal.deal_id} -> user {user_id} conn {c}")
                    continue
                target.delivered += 1
                target.latencies.append(t - deal.t)
    return Joined(owner, managers, examples)
