"""pgbell load benchmark: `make bench` or `.venv/bin/python bench/run.py --help`.

Runs pgbell and the Django Channels + Redis baseline, one after the other,
under the same workload, then what pgbell costs the writers
(bench/writers_cost.py); prints the comparison, writes the raw figures to
bench/results/ and the latency picture to docs/bench-latency.png.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import aiohttp
import psycopg

if __package__ in (None, ""):
    # run as a script (`python bench/run.py`): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import options, plot, report, writers_cost  # noqa: E402
from bench.driver import run_system, scenarios_for  # noqa: E402
from bench.procs import ServerProcess  # noqa: E402
from bench.systems import BASELINE_DB_URL  # noqa: E402

# what a misbehaving server or database can raise out of one system's run
SYSTEM_FAILURES = (RuntimeError, OSError, KeyError, ValueError, aiohttp.ClientError, psycopg.Error)
BASELINE_PYTHON = Path.home() / ".cache" / "baseline-django-venv" / "bin" / "python"


async def main_async(opts: options.Options, procs: list[ServerProcess]) -> int:
    started = time.monotonic()
    logs = opts.results_dir / "logs"
    result: dict = {
        "command": report.command_line(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "workload": {
            "users": opts.users,
            "managers": opts.managers,
            "conns_per_user": opts.conns,
            "receiving_sockets": (opts.users - 1) * opts.conns,
            "frames_per_deal": opts.expected_per_deal(),
            "rates": list(opts.rates),
            "duration_s": opts.duration,
            "drain_s": opts.drain,
            "max_inflight": opts.max_inflight,
            "sql_conns": opts.sql_conns,
        },
        "steps": [],
        "writers": {},
        "problems": [],
        "baseline_sql_na": "baseline" in opts.systems and "sql" in opts.scenarios,
    }
    pgbell_ready = False
    for name in opts.systems:
        if not scenarios_for(opts, name):
            continue  # a server left idle would only take cores from the writers' part
        try:
            steps, _ = await run_system(opts, name, logs, procs)
            result["steps"] += steps
            pgbell_ready = pgbell_ready or name == "pgbell"
        except SYSTEM_FAILURES as e:
            # one system failing must not cost the figures of the other
            msg = f"{name}: {type(e).__name__}: {e}"
            print(f"bench: {msg}", file=sys.stderr, flush=True)
            result["problems"].append(msg.splitlines()[0])
    if "writers" in opts.scenarios:
        # its own fresh database (pgbell_url again) and servers, the systems above stopped
        print("writers' cost: pgbench with pgbell serve and every recipient's socket", flush=True)
        plan = writers_cost.Plan(
            url=opts.pgbell_url,
            clients=opts.pgbench_clients,
            seconds=opts.pgbench_seconds,
            rounds=opts.pgbench_rounds,
            logs=logs,
        )
        try:
            result["writers"] = await writers_cost.measure(plan, procs)
            pgbell_ready = True
        except SYSTEM_FAILURES as e:
            result["problems"].append(f"writers' cost: {e}".splitlines()[0])
    result["machine"] = await asyncio.to_thread(
        report.machine, opts.pgbell_url if pgbell_ready else BASELINE_DB_URL, BASELINE_PYTHON
    )
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    print(report.render(result))
    path = report.save(result, opts.results_dir)
    print(f"\nraw figures: {path}")
    if result["steps"]:
        m = result["machine"]
        subtitle = (
            f"{opts.users - 1} users x {opts.conns} sockets, {opts.managers} managers;"
            f" {m['nproc']} cores, PostgreSQL {m.get('postgresql', '?')}"
        )
        print(f"picture: {plot.latency_cdf(result['steps'], opts.plot_path, subtitle)}")
    print(f"elapsed: {result['elapsed_s']} s")
    return 1 if result["problems"] else 0


def main(argv: list[str] | None = None) -> int:
    opts = options.parse(argv)
    procs: list[ServerProcess] = []
    try:
        return asyncio.run(_guarded(opts, procs))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\nbench: interrupted; servers stopped", file=sys.stderr)
        return 130
    finally:
        # asyncio.run already stopped them in _guarded; this is for a second Ctrl-C
        for p in procs:
            p.kill_now()


async def _guarded(opts: options.Options, procs: list[ServerProcess]) -> int:
    # SIGTERM (a killed `make bench`) takes the same way out as Ctrl-C: the
    # main task is cancelled and every finally below stops what was started
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await main_async(opts, procs)
    finally:
        for p in procs:
            await p.stop()


if __name__ == "__main__":
    sys.exit(main())
