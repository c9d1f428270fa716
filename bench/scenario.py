"""One step of the benchmark: write at one rate, then wait for the frames.

The writer and every receiving socket share one Python process and one
event loop. If that loop falls behind, frames wait in it and the measured
latency grows although the server did nothing wrong, so each step also
records how late the loop wakes up ("harness lag"): when it is large, the
step measured the harness, not the server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.clients import Fleet
from bench.stats import Joined, join, percentile, summary_ms
from bench.writers import WriteResult

LAG_TICK = 0.02


class LagMonitor:
    """Measures how late the event loop runs a 20 ms timer."""

    def __init__(self, max_seconds: float) -> None:
        self.samples: list[float] = []
        self._cap = int(max_seconds / LAG_TICK) + 1
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(self._cap):
            due = loop.time() + LAG_TICK
            await asyncio.sleep(LAG_TICK)
            self.samples.append(loop.time() - due)

    async def stop(self) -> dict[str, float | None]:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=2)
        values = sorted(self.samples)
        p99, worst = percentile(values, 99), percentile(values, 100)
        return {
            "p99_ms": None if p99 is None else round(p99 * 1000, 1),
            "max_ms": None if worst is None else round(worst * 1000, 1),
        }


@dataclass
class StepResult:
    system: str
    scenario: str
    rate: float
    duration: float
    write: WriteResult
    joined: Joined
    drain_seconds: float
    lag: dict[str, float | None]
    closed_sockets: list[str]

    def to_json(self) -> dict:
        j = self.joined
        return {
            "system": self.system,
            "scenario": self.scenario,
            "target_rate": self.rate,
            "duration_s": self.duration,
            "attempted": self.write.attempted,
            "deals_ok": len(self.write.sent),
            "achieved_rate": round(self.write.achieved_rate, 2),
            "max_schedule_slip_ms": round(self.write.max_slip * 1000, 1),
            "errors": dict(self.write.errors),
            "drain_s": round(self.drain_seconds, 2),
            "harness_lag": self.lag,
            "closed_sockets": self.closed_sockets,
            "missing_examples": j.missing_examples,
            "recipients": {
                name: {
                    "expected": d.expected,
                    "delivered": d.delivered,
                    "missing": d.missing,
                    "duplicates": d.duplicates,
                    "extras": d.extras,
                    "latency_ms": summary_ms(d.latencies),
                    "latencies_ms": [round(v * 1000, 3) for v in d.latencies],
                }
                for name, d in (("owner", j.owner), ("managers", j.managers))
            },
        }


async def run_step(
    system: str,
    scenario: str,
    rate: float,
    duration: float,
    drain: float,
    fleet: Fleet,
    manager_ids: set[int],
    write: Callable[[], Awaitable[WriteResult]],
) -> StepResult:
    lag = LagMonitor(duration + drain + 120)
    lag.start()
    try:
        result = await write()
        deal_ids = [s.deal_id for s in result.sent]
        owed = sum(fleet.conns * (1 + len(manager_ids - {s.owner_id})) for s in result.sent)
        # wait for the late frames, bounded by `drain`; what is still missing
        # after that is reported as lost
        t0 = time.monotonic()
        for _ in range(int(drain / 0.1) + 1):
            if fleet.delivered(deal_ids) >= owed or time.monotonic() - t0 >= drain:
                break
            await asyncio.sleep(0.1)
        drained = time.monotonic() - t0
    finally:
        lag_figures = await lag.stop()
    joined = join(result.sent, fleet.frames_by_deal, manager_ids, fleet.conns)
    return StepResult(
        system,
        scenario,
        rate,
        duration,
        result,
        joined,
        drained,
        lag_figures,
        list(fleet.closed),
    )
