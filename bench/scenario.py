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

from bench import cpu
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
    manager_ids: set[int]
    cpu_cores: dict[str, float]
    backlog_cleared: bool = False
    delivered_in_drain: int = 0

    def __post_init__(self) -> None:
        self.delivered_in_drain = self.joined.all.delivered

    def owed(self) -> int:
        return self.joined.all.expected

    def rejoin(self, fleet: Fleet) -> None:
        """Count again at the very end: frames that came after the drain are
        late, not lost; only what never came at all is a loss."""
        self.joined = join(self.write.sent, fleet.frames_by_deal, self.manager_ids, fleet.conns)

    def to_json(self) -> dict:
        j = self.joined
        return {
            "system": self.system,
            "scenario": self.scenario,
            "target_rate": self.rate,
            "duration_s": self.duration,
            "attempted": self.write.attempted,
            "unsent": self.write.unsent,
            "deals_ok": len(self.write.sent),
            "achieved_rate": round(self.write.achieved_rate, 2),
            "max_schedule_slip_ms": round(self.write.max_slip * 1000, 1),
            "errors": dict(self.write.errors),
            # how long the writer waited for its answer: a slow write path
            # and a slow fan-out look alike in the frame latency alone
            "write_ack_ms": summary_ms([s.ack - s.t for s in self.write.sent]),
            "drain_s": round(self.drain_seconds, 2),
            "delivered_within_drain": self.delivered_in_drain,
            "backlog_cleared": self.backlog_cleared,
            "harness_lag": self.lag,
            "cpu_cores_while_writing": self.cpu_cores,
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
    server_pid: int | None = None,
) -> StepResult:
    lag = LagMonitor(duration + drain + 120)
    lag.start()
    try:
        before = await asyncio.to_thread(cpu.sample, server_pid)
        result = await write()
        used = cpu.cores_used(before, await asyncio.to_thread(cpu.sample, server_pid))
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
        manager_ids,
        used,
    )


async def settle(fleet: Fleet, steps: list[StepResult], seconds: float) -> float:
    """After the last step, wait (at most `seconds`) for frames still owed.

    Stops early once nothing has arrived for 3 s: a frame that is not on its
    way by then is lost, not late.
    """
    deal_ids = [s.deal_id for step in steps for s in step.write.sent]
    owed = sum(step.owed() for step in steps)
    t0 = time.monotonic()
    last, last_change = fleet.delivered(deal_ids), t0
    for _ in range(int(seconds / 0.1) + 1):
        now = time.monotonic()
        got = fleet.delivered(deal_ids)
        if got != last:
            last, last_change = got, now
        if got >= owed or now - t0 >= seconds or now - last_change >= 3.0:
            break
        await asyncio.sleep(0.1)
    for step in steps:
        step.rejoin(fleet)
    return time.monotonic() - t0
