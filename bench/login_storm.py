"""Login storm: does a flood of bogus logins stall the rest of pgbell?

`.venv/bin/python bench/login_storm.py [--help]` starts its own `pgbell
serve` on a throwaway database (dropped and recreated, `pgbell migrate
--demo`), then measures twice, first quiet, then during the storm:

- /healthz latency, one probe every --probe-ms (sequential: a stalled
  server shows as one long probe, not as many);
- live notifications: a deal INSERTed from SQL every --deal-ms, from
  sending the INSERT (autocommit) to the frame on an open WebSocket.

The storm is --clients concurrent bogus logins (made-up usernames) for
--seconds, each client sending its next login as soon as it has an answer,
Retry-After ignored, as an attacker would (--honour-retry-after: as a
client that plays by the rules would). It runs in a process of its own,
so that its client work does not weigh on the measuring event loop. The
server's login budgets are lifted (PGBELL_LOGIN_MAX_FAILURES and
..._PER_ADDRESS): every login then asks for a password check, the worst
case, that of an attacker with many addresses. PGBELL_LOGIN_THREADS and
PGBELL_LOGIN_MAX_PENDING keep their defaults unless set in the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import psycopg

if __package__ in (None, ""):
    # run as a script (`python bench/login_storm.py`): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import cpu  # noqa: E402
from bench.clients import login  # noqa: E402
from bench.options import ROOT, require_loopback  # noqa: E402
from bench.procs import ServerProcess, free_port  # noqa: E402
from bench.stats import summary_ms  # noqa: E402
from bench.systems import PGBELL, fresh_pgbell_database, insert_pgbell_users  # noqa: E402

HERE = Path(__file__).resolve()
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/pgbell_login_storm"
TARGET_HEALTHZ_P99_MS = 100.0
TARGET_NOTIFICATION_MS = 250.0


async def storm(base_url: str, clients: int, seconds: float, polite: bool) -> None:
    """The attacker (run in a child process): prints `started`, then a JSON tally."""
    statuses: Counter[str] = Counter()
    stop_at = time.monotonic() + seconds

    async def one(http: aiohttp.ClientSession, c: int) -> None:
        i = 0
        while time.monotonic() < stop_at:
            body = {"username": f"nobody-{c}-{i}", "password": secrets.token_hex(8)}
            try:
                async with http.post(f"{base_url}/auth/login", json=body) as r:
                    await r.read()
                    statuses[str(r.status)] += 1
                if r.status == 429 and polite:
                    await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
            except (aiohttp.ClientError, OSError) as e:
                statuses[type(e).__name__] += 1
            i += 1

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        print("started", flush=True)
        await asyncio.gather(*(one(http, c) for c in range(clients)))
    print(json.dumps(statuses), flush=True)


async def probe_healthz(http: aiohttp.ClientSession, url: str, seconds: float, every: float):
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        sent = time.perf_counter()
        try:
            async with http.get(f"{url}/healthz") as r:
                await r.read()
                if r.status != 200:
                    failures[f"HTTP {r.status}"] += 1
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            failures[type(e).__name__] += 1
        latencies.append(time.perf_counter() - sent)
        await asyncio.sleep(max(0.0, every - (time.perf_counter() - sent)))
    return latencies, failures


async def write_deals(dsn: str, owner_id: int, seconds: float, every: float) -> dict[int, float]:
    """deal id -> perf_counter() just before its INSERT was sent."""
    sent: dict[int, float] = {}
    stop_at = time.monotonic() + seconds
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < stop_at:
            t = time.perf_counter()
            cur = await conn.execute(
                "INSERT INTO deals (title, amount, owner_id) VALUES ('storm', 1, %s) RETURNING id",
                (owner_id,),
            )
            row = await cur.fetchone()
            assert row is not None
            sent[row[0]] = t
            await asyncio.sleep(max(0.0, every - (time.perf_counter() - t)))
    return sent


async def read_frames(ws: aiohttp.ClientWebSocketResponse, arrived: dict[int, float]) -> None:
    """deal id -> perf_counter() when its notification frame arrived; runs until cancelled."""
    async for msg in ws:
        t = time.perf_counter()
        if msg.type != aiohttp.WSMsgType.TEXT:
            break
        frame = json.loads(msg.data)
        if frame.get("type") == "notification":
            arrived[int(frame["notification"]["data"]["deal_id"])] = t


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks) - idle) / cpu.TICK, sum(ticks) / cpu.TICK


async def measure(http, base_url: str, dsn: str, owner_id: int, opts, server_pid) -> dict:
    """One phase: health probes and deals side by side for opts.seconds,
    and who kept the cores busy meanwhile."""
    before, busy_before = cpu.sample(server_pid), machine_busy()
    probes, deals = await asyncio.gather(
        probe_healthz(http, base_url, opts.seconds, opts.probe_ms / 1000),
        write_deals(dsn, owner_id, opts.seconds, opts.deal_ms / 1000),
    )
    after, busy_after = cpu.sample(server_pid), machine_busy()
    cores = cpu.cores_used(before, after)
    wall = after["wall"] - before["wall"]
    cores["machine"] = round((busy_after[0] - busy_before[0]) / wall, 2)
    return {"probes": probes, "deals": deals, "cores": cores}


def summarise(phase: dict, arrived: dict[int, float]) -> dict:
    latencies, failures = phase["probes"]
    sent = phase["deals"]
    delays = [arrived[d] - t for d, t in sent.items() if d in arrived]
    return {
        "healthz": summary_ms(latencies) | {"failed": sum(failures.values())},
        "notification": summary_ms(delays) | {"missing": len(sent) - len(delays)},
        "cores": phase["cores"],
    }


async def run(opts) -> int:
    require_loopback(opts.database_url)
    env = await fresh_pgbell_database(
        opts.database_url,
        PGBELL_LOG_LEVEL="WARNING",
        PGBELL_LOGIN_MAX_FAILURES="1000000",
        PGBELL_LOGIN_MAX_FAILURES_PER_ADDRESS="1000000",
    )
    await asyncio.to_thread(insert_pgbell_users, opts.database_url, 2, 0)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = ServerProcess(
        "pgbell",
        [str(PGBELL), "serve", "--workers", "1", "--host", "127.0.0.1", "--port", str(port)],
        env,
        ROOT,
        opts.results_dir / "logs" / "login_storm.log",
    )
    try:
        await server.start()
        await server.wait_healthy(base_url, 120)
        return await phases(opts, base_url, server.pid)
    finally:
        await server.stop()


async def phases(opts, base_url: str, server_pid: int | None) -> int:
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        watcher = await login(http, base_url, "user0")
        ws = await http.ws_connect(f"{base_url}/ws", params={"token": watcher.token})
        first = await asyncio.wait_for(ws.receive_json(), 10)
        if first.get("type") != "snapshot":
            raise RuntimeError(f"first frame is {first.get('type')!r}, not a snapshot")
        arrived: dict[int, float] = {}
        reader = asyncio.get_running_loop().create_task(read_frames(ws, arrived))
        quiet = await measure(http, base_url, opts.database_url, watcher.id, opts, server_pid)

        attacker = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE),
            "--storm-only",
            base_url,
            "--clients",
            str(opts.clients),
            "--seconds",
            str(opts.seconds + 0.5),  # outlasts the measurement a little
            *(["--honour-retry-after"] if opts.honour_retry_after else []),
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            line = await asyncio.wait_for(attacker.stdout.readline(), 30)
            if line.strip() != b"started":
                raise RuntimeError(f"the storm did not start: {line!r}")
            stormy = await measure(http, base_url, opts.database_url, watcher.id, opts, server_pid)
            out, _ = await asyncio.wait_for(attacker.communicate(), 60)
        finally:
            if attacker.returncode is None:
                attacker.kill()
                await attacker.wait()
        await asyncio.sleep(1.0)  # late frames: counted, and missing ones shown as missing
        reader.cancel()
        await ws.close()
    tally = json.loads(out.decode().strip().splitlines()[-1])
    return report(opts, summarise(quiet, arrived), summarise(stormy, arrived), tally)


def _row(name: str, s: dict) -> str:
    h, n, c = s["healthz"], s["notification"], s["cores"]
    return (
        f"{name:<7} /healthz n={h['n']:<4} p50={h['p50']}  p99={h['p99']}  max={h['max']}"
        f"  failed={h['failed']}\n"
        f"{'':<7} notification n={n['n']:<3} p50={n['p50']}  p99={n['p99']}  max={n['max']}"
        f"  missing={n['missing']}\n"
        f"{'':<7} cores busy: server {c['server']}, postgresql {c['postgresql']},"
        f" this harness {c['harness']}, whole machine {c['machine']} of {os.cpu_count()}"
    )


def report(opts, quiet: dict, stormy: dict, tally: dict[str, int]) -> int:
    checked, refused = tally.get("401", 0), tally.get("429", 0)
    other = {k: v for k, v in tally.items() if k not in ("401", "429")}
    threads = os.environ.get("PGBELL_LOGIN_THREADS") or "default (cores - 1)"
    pending = os.environ.get("PGBELL_LOGIN_MAX_PENDING") or "default (16)"
    print(f"command: .venv/bin/python bench/login_storm.py {' '.join(sys.argv[1:])}".rstrip())
    print(
        f"machine: {os.cpu_count()} cores; server: PGBELL_LOGIN_THREADS={threads},"
        f" PGBELL_LOGIN_MAX_PENDING={pending}, login budgets lifted"
    )
    manners = "honoured" if opts.honour_retry_after else "ignored"
    print(
        f"storm: {opts.clients} clients x {opts.seconds:g} s of bogus logins,"
        f" Retry-After {manners};"
        f" {checked} checked (401, {checked / (opts.seconds + 0.5):.1f}/s),"
        f" {refused} refused at once (429), other: {other or 'none'}"
    )
    print(f"probes every {opts.probe_ms:g} ms, a deal every {opts.deal_ms:g} ms; latencies in ms")
    print(_row("quiet", quiet))
    print(_row("storm", stormy))
    h, n = stormy["healthz"], stormy["notification"]
    met = (
        h["p99"] is not None
        and h["p99"] <= TARGET_HEALTHZ_P99_MS
        and n["max"] is not None
        and n["max"] <= TARGET_NOTIFICATION_MS
        and n["missing"] == 0
    )
    print(
        f"target during the storm (/healthz p99 <= {TARGET_HEALTHZ_P99_MS:g} ms, every"
        f" notification within {TARGET_NOTIFICATION_MS:g} ms): {'met' if met else 'NOT met'}"
    )
    return 0 if met else 1


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/login_storm.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--clients", type=int, default=24, help="concurrent bogus logins")
    p.add_argument("--seconds", type=float, default=3.0, help="length of each phase")
    p.add_argument("--probe-ms", type=float, default=20.0, help="interval of /healthz probes")
    p.add_argument("--deal-ms", type=float, default=100.0, help="interval of SQL deal inserts")
    p.add_argument("--database-url", default=DEFAULT_URL, help="DROPPED and recreated on every run")
    p.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    p.add_argument(
        "--honour-retry-after",
        action="store_true",
        help="storm clients wait out a 429's Retry-After (default: they ask again at once)",
    )
    p.add_argument("--storm-only", metavar="BASE_URL", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if not 1 <= a.clients <= 1000 or not 0.5 <= a.seconds <= 600:
        p.error("--clients must be 1..1000 and --seconds 0.5..600")
    if not 1 <= a.probe_ms <= 10_000 or not 1 <= a.deal_ms <= 10_000:
        p.error("--probe-ms and --deal-ms must be 1..10000")
    return a


async def _guarded(opts) -> int:
    # SIGTERM takes the same way out as Ctrl-C: cancelled, and the server stopped
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run(opts)


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    if opts.storm_only:
        asyncio.run(storm(opts.storm_only, opts.clients, opts.seconds, opts.honour_retry_after))
        return 0
    try:
        return asyncio.run(_guarded(opts))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\nbench: interrupted; server stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
