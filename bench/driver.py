"""Run every step of the workload against one system, start to stop.

The systems run one after the other, never at the same time: on a 2-core
machine two servers plus two databases' worth of work would measure the
contention between them instead of either of them.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from bench.clients import Fleet, login_all
from bench.options import Options
from bench.procs import ServerProcess
from bench.scenario import StepResult, run_step, settle
from bench.systems import System, start_baseline, start_pgbell
from bench.writers import REQUEST_TIMEOUT, http_writer, sql_writer

WARMUP_RATE, WARMUP_SECONDS = 10.0, 2.0


def scenarios_for(opts: Options, system: str) -> list[str]:
    # the baseline has no triggers: a SQL INSERT notifies nobody there
    wanted = [s for s in ("http", "sql") if s in opts.scenarios]
    return [s for s in wanted if s == "http" or system == "pgbell"]


async def run_system(
    opts: Options, name: str, logs: Path, procs: list[ServerProcess]
) -> tuple[list[dict], System | None]:
    """All steps for `name`; returns their JSON and the (stopped) system.

    If a step fails half-way the exception propagates and the steps done so
    far are lost with it: a partial table would read as a complete one.
    """
    scenarios = scenarios_for(opts, name)
    starter = start_pgbell if name == "pgbell" else start_baseline
    t0 = time.monotonic()
    print(f"{name}: starting (log {logs / (name + '.log')})", flush=True)
    system = await starter(opts, logs, procs)
    print(f"{name}: healthy after {time.monotonic() - t0:.1f} s at {system.base_url}", flush=True)
    if not scenarios:
        return [], system
    steps: list[StepResult] = []
    fleet: Fleet | None = None
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    connector = aiohttp.TCPConnector(limit=opts.max_inflight + 8)
    try:
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            names = [f"user{i}" for i in range(opts.users)]
            users = await login_all(http, system.base_url, names)
            writer = users[names[-1]]  # the writer holds no socket: it is owed nothing
            managers = {users[n].id for n in names[: opts.managers]}
            owners = [users[n].id for n in names[opts.managers : -1]]
            wrong = [n for n in names[: opts.managers] if "manager" not in users[n].roles]
            if wrong:
                raise RuntimeError(f"{name}: {wrong} log in without the role manager")

            deals = sum(opts.rates) * opts.duration * len(scenarios) + WARMUP_RATE * WARMUP_SECONDS
            budget = len(scenarios) * len(opts.rates) * (opts.duration + opts.drain + 45) + 120
            fleet = Fleet(system.base_url, [users[n] for n in names[:-1]], opts.conns)
            cap = int(deals * 2) + 1000  # frames per socket; a manager socket gets every deal
            await fleet.connect(deadline=time.monotonic() + budget, max_frames=cap)
            print(f"{name}: {len(names) - 1} users x {opts.conns} sockets connected", flush=True)

            def http_step(rate: float, tag: str):
                return lambda: http_writer(
                    http, system.base_url, writer.token, owners, rate, opts.duration,
                    opts.max_inflight, tag,
                )  # fmt: skip

            def sql_step(rate: float, tag: str):
                assert system.dsn is not None
                return lambda: sql_writer(
                    system.dsn, owners, rate, opts.duration, opts.sql_conns, tag
                )

            # warm-up, not reported: first requests pay for pools, threads, caches
            await run_step(
                name, "warmup", WARMUP_RATE, WARMUP_SECONDS, 5.0, fleet, managers,
                lambda: http_writer(
                    http, system.base_url, writer.token, owners, WARMUP_RATE, WARMUP_SECONDS,
                    opts.max_inflight, "warmup",
                ),
            )  # fmt: skip
            for scenario in scenarios:
                for rate in opts.rates:
                    tag = f"{scenario}-{rate:g}"
                    # deleting rows pgbell has not fanned out yet would make a
                    # loss of our own: clear only after a fully delivered step
                    clear = not opts.keep_backlog and not (steps and steps[-1].joined.all.missing)
                    if clear:
                        await asyncio.to_thread(system.clear_notifications)
                    make = http_step if scenario == "http" else sql_step
                    step = await run_step(
                        name, scenario, rate, opts.duration, opts.drain, fleet, managers,
                        make(rate, tag), system.process.pid,
                    )  # fmt: skip
                    step.backlog_cleared = clear
                    steps.append(step)
                    _progress(step.to_json())
            waited = await settle(fleet, steps, opts.drain)
            print(f"{name}: waited {waited:.1f} s for late frames", flush=True)
    finally:
        if fleet is not None:
            await fleet.close()
        code = await system.process.stop()
        print(f"{name}: stopped (exit {code})", flush=True)
    return [s.to_json() for s in steps], system


def _progress(s: dict) -> None:
    both = [s["recipients"][w] for w in ("owner", "managers")]
    got = sum(r["delivered"] for r in both)
    owed = sum(r["expected"] for r in both)
    p50 = s["recipients"]["managers"]["latency_ms"]["p50"]
    print(
        f"  {s['system']:<8} {s['scenario']:<4} {s['target_rate']:>6g}/s:"
        f" achieved {s['achieved_rate']:.1f}/s, frames {got}/{owed},"
        f" managers p50 {p50} ms, errors {sum(s['errors'].values())},"
        f" loop lag max {s['harness_lag']['max_ms']} ms",
        flush=True,
    )
