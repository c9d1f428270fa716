"""POST /deals at saturation, with 1 worker and with N (`pgbell serve --workers`).

`.venv/bin/python bench/rest_saturation.py [--help]` runs, for each worker
count in --workers, its own `pgbell serve --workers N` on a throwaway
database (dropped and recreated, `pgbell migrate --demo`, --users users of
whom the writer is a manager), then --writers concurrent writers POST
/deals as fast as the server answers (bench/writers.py, open loop with a
rate no server reaches, so only --writers are ever in flight) for
--seconds after a --warmup. It prints deals/s, the answer time, and who
kept the cores busy: the server (supervisor and workers), PostgreSQL and
this harness. Each deal notifies its owner and every manager (--managers;
the writer is one more); nobody holds a socket, so this is the REST path
and the database's work alone. The servers run with their defaults (an
access-log line per request) but the demo's limit on deals per minute.

On one machine the client, the server and PostgreSQL share the cores:
compare the rows of one run, and read the cores column before the rate.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import aiohttp

if __package__ in (None, ""):
    # run as a script (`python bench/rest_saturation.py`): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import cpu  # noqa: E402
from bench.clients import login  # noqa: E402
from bench.options import ROOT, require_loopback  # noqa: E402
from bench.procs import ServerProcess, free_port  # noqa: E402
from bench.stats import summary_ms  # noqa: E402
from bench.systems import PGBELL, fresh_pgbell_database, insert_pgbell_users  # noqa: E402
from bench.writers import http_writer  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/pgbell_rest_saturation"
# far above what any server here answers: the writers are bounded by --writers alone
UNREACHABLE_RATE = 20_000.0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--database-url", default=DEFAULT_URL, help=f"dropped first (default {DEFAULT_URL})"
    )
    p.add_argument(
        "--workers",
        default=f"1,{os.cpu_count() or 1}",
        help="worker counts to run, comma-separated (default 1 and the cores)",
    )
    p.add_argument("--writers", type=int, default=32, help="concurrent requests (default 32)")
    p.add_argument("--seconds", type=float, default=15.0, help="measured (default 15)")
    p.add_argument("--warmup", type=float, default=3.0, help="before measuring (default 3)")
    p.add_argument("--users", type=int, default=20, help="deal owners (default 20)")
    p.add_argument(
        "--managers",
        type=int,
        default=4,
        help="of them, managers: each deal notifies them and its owner (default 4, as make bench)",
    )
    p.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    opts = p.parse_args(argv)
    opts.worker_counts = [int(w) for w in opts.workers.split(",") if w.strip()]
    return opts


async def one_run(opts: argparse.Namespace, workers: int) -> dict:
    env = await fresh_pgbell_database(
        opts.database_url,
        # the server's defaults (INFO: an access-log line per request) but
        # the demo's deal limit, which would refuse nearly every request
        PGBELL_DEALS_PER_MINUTE="1000000",
    )
    await asyncio.to_thread(insert_pgbell_users, opts.database_url, opts.users, opts.managers)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = ServerProcess(
        f"pgbell --workers {workers}",
        [
            str(PGBELL),
            "serve",
            "--workers",
            str(workers),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env,
        ROOT,
        opts.results_dir / "logs" / f"rest_saturation_{workers}.log",
    )
    try:
        await server.start()
        await server.wait_healthy(base, 120)
        connector = aiohttp.TCPConnector(limit=opts.writers)
        async with aiohttp.ClientSession(connector=connector) as http:
            # the last user is the manager insert_pgbell_users makes the writer
            writer = await login(http, base, f"user{opts.users - 1}")
            owners = list(range(1, opts.users + 1))
            await http_writer(
                http, base, writer.token, owners, UNREACHABLE_RATE, opts.warmup, opts.writers, "w"
            )
            before = cpu.sample(server.pid)
            result = await http_writer(
                http, base, writer.token, owners, UNREACHABLE_RATE, opts.seconds, opts.writers, "m"
            )
            after = cpu.sample(server.pid)
    finally:
        await server.stop(grace=40)
    return {
        "workers": workers,
        "rate": result.achieved_rate,
        "ok": len(result.sent),
        "errors": dict(result.errors),
        "answer": summary_ms([s.ack - s.t for s in result.sent]),
        "cores": cpu.cores_used(before, after),
    }


async def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    require_loopback(opts.database_url)
    rows = [await one_run(opts, n) for n in opts.worker_counts]
    print(f"command: .venv/bin/python bench/rest_saturation.py {' '.join(sys.argv[1:])}".rstrip())
    print(
        f"machine: {os.cpu_count()} cores; {opts.writers} concurrent POST /deals for"
        f" {opts.seconds:g} s after {opts.warmup:g} s of warm-up; {opts.users} owners,"
        f" {opts.managers} managers"
    )
    base = rows[0]["rate"] or 1.0
    for r in rows:
        a, c = r["answer"], r["cores"]
        print(
            f"workers={r['workers']:<3} {r['rate']:7.1f} deals/s ({r['rate'] / base:.2f}x)"
            f"  answer p50={a['p50']} p99={a['p99']} ms  errors={r['errors'] or 0}"
            f"  cores busy: server {c.get('server')}, postgresql {c.get('postgresql')},"
            f" this harness {c.get('harness')}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
