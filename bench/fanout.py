"""Fan-out benchmark: `.venv/bin/python bench/fanout.py --sockets 10000`
(or `make bench-fanout ARGS=...`).

Scenarios 1 to 3 of "Fan-out at scale": N sockets whose clients offer
permessage-deflate as browsers do, held open, then one broadcast to all of
them. The same clients meet, one after the other: pgbell serve with its
defaults (compression off), pgbell serve with PGBELL_WS_COMPRESSION=on, and
the floor (bench/floor.py: a bare aiohttp endpoint, no database, no auth).

Per system: server RSS per idle socket (VmRSS after the sockets minus
before, over N), connect rate (sockets/s with their snapshot) and server
CPU per connect, and for the broadcast (pgbell: one COMMIT of
pgbell.notify(...) naming every user; floor: POST /broadcast) the latency
from the trigger to each client's receipt, frames received against
expected, and server CPU per 10,000 frames; then the reconnect storm: every
socket drops and all reconnect at once with ?since=. Prints a table, writes the raw
figures to bench/results/fanout-*.json and a latency picture beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import resource
import secrets
import signal
import sys
import time
from pathlib import Path

import aiohttp
import jwt
import psycopg

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import cpu, report  # noqa: E402
from bench.fanout_procs import Clients, listen_drops, rss_kib  # noqa: E402
from bench.fanout_report import storm_table, table  # noqa: E402
from bench.options import ROOT, require_loopback  # noqa: E402
from bench.procs import ServerProcess, free_port  # noqa: E402
from bench.stats import summary_ms  # noqa: E402
from bench.systems import PGBELL, fresh_pgbell_database, run_bounded  # noqa: E402

SYSTEMS = ("pgbell", "pgbell-deflate", "floor", "floor-deflate")
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/pgbell_fanout"
NOTIFY = (
    "SELECT pgbell.notify('deal_created', user_ids => %s::text[],"
    " data => jsonb_build_object('deal_id', 1, 'title', 'Fan-out', 'amount', 1))"
)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/fanout.py",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--sockets", type=int, default=10_000, help="sockets held open")
    p.add_argument("--per-user", type=int, default=4, help="sockets per user")
    p.add_argument("--client-procs", type=int, default=4, help="client processes")
    p.add_argument(
        "--inflight", type=int, default=96, help="handshakes in flight, over all processes"
    )
    p.add_argument("--systems", default=",".join(SYSTEMS), help="systems to run, in order")
    p.add_argument(
        "--no-storm", dest="storm", action="store_false", help="skip the reconnect storm"
    )
    p.add_argument(
        "--storm-inflight", type=int, default=1000, help="handshakes in flight in the storm"
    )
    p.add_argument("--settle", type=float, default=3.0, help="seconds idle before reading RSS")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds a broadcast may take")
    p.add_argument("--pgbell-url", default=DEFAULT_URL, help="DROPPED and recreated")
    p.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    a = p.parse_args(argv)
    a.systems = tuple(s.strip() for s in a.systems.split(",") if s.strip())
    if not a.systems or set(a.systems) - set(SYSTEMS):
        p.error(f"--systems: choose from {', '.join(SYSTEMS)}")
    if not 1 <= a.sockets <= 100_000 or not 1 <= a.per_user <= 50:
        p.error("--sockets must be 1..100000 and --per-user 1..50")
    if not 1 <= a.client_procs <= 64 or not 1 <= a.inflight <= a.storm_inflight <= 100_000:
        p.error("--client-procs must be 1..64, 1 <= --inflight <= --storm-inflight <= 100000")
    if math.ceil(a.sockets / a.client_procs) > 15_000:
        p.error("--client-procs: at most 15,000 sockets per process (20,000 open files)")
    require_loopback(a.pgbell_url)
    return a


def users_and_sockets(a: argparse.Namespace, secret: str) -> tuple[list[str], list[list[str]]]:
    users = [f"u{i}" for i in range(math.ceil(a.sockets / a.per_user))]
    exp = int(time.time()) + 6 * 3600
    tokens = {u: jwt.encode({"sub": u, "exp": exp}, secret, algorithm="HS256") for u in users}
    return users, [[users[j % len(users)], tokens[users[j % len(users)]]] for j in range(a.sockets)]


def commit_notify(url: str, users: list[str], clear: bool = True) -> tuple[float, float, int]:
    """One transaction that notifies every user; (time before COMMIT, after, rows)."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        if clear:  # every system starts with no backlog
            conn.execute("DELETE FROM pgbell.notifications")
            conn.commit()
        rows = conn.execute(NOTIFY, (users,)).fetchone()[0]
        t0 = time.time()
        conn.commit()
        return t0, time.time(), rows


async def start_server(name: str, a: argparse.Namespace, secret: str, logs: Path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    if name.startswith("floor"):
        argv = [sys.executable, str(ROOT / "bench" / "floor.py"), "--port", str(port)]
        env = dict(os.environ)
        if name == "floor-deflate":
            argv.append("--compress")
    else:
        argv = [str(PGBELL), "serve", "--port", str(port)]
        env = dict(
            os.environ,
            DATABASE_URL=a.pgbell_url,
            PGBELL_JWT_SECRET=secret,
            PGBELL_LOG_LEVEL="WARNING",
            PGBELL_WS_COMPRESSION="on" if name == "pgbell-deflate" else "off",
            # one process, as the floor: its RSS and CPU are the server's
            PGBELL_WORKERS="1",
        )
    proc = ServerProcess(name, argv, env, ROOT, logs / f"fanout-{name}.log")
    return proc, base


async def run_system(name: str, a, secret: str, users, sockets, logs: Path) -> dict:
    proc, base = await start_server(name, a, secret, logs)
    clients = Clients(a.client_procs, logs)
    try:
        await proc.start()
        await proc.wait_healthy(base, 120)
        await asyncio.sleep(1)
        pid = proc.pid
        rss0 = rss_kib(pid)
        await clients.start()
        c0, drops = cpu.sample(pid), listen_drops()
        print(f"{name}: opening {a.sockets} sockets", flush=True)
        shares = await clients.connect("ws" + base[4:] + "/ws", sockets, a.inflight)
        c1 = cpu.sample(pid)
        connected = sum(s["connected"] for s in shares)
        span = max(s["last_snapshot"] for s in shares) - min(s["started"] for s in shares)
        await asyncio.sleep(a.settle)
        rss1 = rss_kib(pid)
        print(f"{name}: {connected} open, broadcasting", flush=True)
        b0 = cpu.sample(pid)
        if name.startswith("floor"):
            async with aiohttp.ClientSession() as http:
                t0 = time.time()
                async with http.post(f"{base}/broadcast") as r:
                    sent = (await r.json())["sent"]
                t_ack = time.time()
        else:
            t0, t_ack, sent = await asyncio.to_thread(commit_notify, a.pgbell_url, users)
        got = await clients.ask_all({"cmd": "collect", "timeout": a.timeout})
        b1 = cpu.sample(pid)
        latencies = [t - t0 for g in got for t in g["times"]]
        received = len(latencies)
        cpu_s = b1["server"] - b0["server"]
        storm = await reconnect_storm(name, a, users, clients, pid) if a.storm else None
        return {
            "storm": storm,
            "system": name,
            "sockets": a.sockets,
            "connected": connected,
            "connect_errors": _merge(s["errors"] for s in shares),
            "rss_before_kib": rss0,
            "rss_after_kib": rss1,
            "rss_per_socket_kib": round((rss1 - rss0) / max(connected, 1), 1),
            "connect_s": round(span, 2),
            "connect_listen_drops": listen_drops() - drops,
            "connects_per_s": round(connected / span, 1) if span > 0 else None,
            "connect_cpu_ms_each": round(1000 * (c1["server"] - c0["server"]) / connected, 3)
            if connected
            else None,
            "broadcast_trigger_ack_ms": round(1000 * (t_ack - t0), 1),
            "broadcast_rows_or_sent": sent,
            "frames_expected": sum(g["expected"] for g in got),
            "frames_received": received,
            "frames_extra": sum(g["extra"] for g in got),
            "sockets_closed_by_server": sum(g["closed"] for g in got),
            "latency_ms": summary_ms(latencies),
            "latencies_ms": sorted(round(v * 1000, 2) for v in latencies),
            "broadcast_cpu_s": round(cpu_s, 3),
            "cpu_s_per_10k_frames": round(cpu_s * 10_000 / received, 3) if received else None,
            "broadcast_cores": cpu.cores_used(b0, b1),
        }
    finally:
        await clients.stop()
        await proc.stop()


async def reconnect_storm(name: str, a, users: list[str], clients: Clients, pid: int) -> dict:
    """Scenario 3: every socket drops, one more notification is committed for
    every user meanwhile (pgbell), and all reconnect at once with ?since= the
    last id they got; each resume snapshot must carry what they missed."""
    print(f"{name}: dropping every socket, then all reconnect at once", flush=True)
    await clients.ask_all({"cmd": "drop"})
    if not name.startswith("floor"):
        await asyncio.to_thread(commit_notify, a.pgbell_url, users, False)
    s0, drops = cpu.sample(pid), listen_drops()
    shares = await clients.ask_all(
        {"cmd": "reconnect", "inflight": max(1, a.storm_inflight // a.client_procs)}
    )
    s1 = cpu.sample(pid)
    connected = sum(s["connected"] for s in shares)
    span = max(s["last_snapshot"] for s in shares) - min(s["started"] for s in shares)
    missed = [m for s in shares for m in s["missed"]]
    return {
        "reconnected": connected,
        "errors": _merge(s["errors"] for s in shares),
        "seconds": round(span, 2),
        "per_s": round(connected / span, 1) if span > 0 else None,
        "server_cpu_ms_each": round(1000 * (s1["server"] - s0["server"]) / connected, 3)
        if connected
        else None,
        "postgresql_cpu_s": round(s1["postgresql"] - s0["postgresql"], 2),
        "listen_drops": listen_drops() - drops,
        # pgbell: each resume owes exactly the one notification committed meanwhile
        "resumed_complete": None if name.startswith("floor") else sum(m >= 1 for m in missed),
    }


def _merge(dicts) -> dict:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


async def send_floor(n: int) -> dict | None:
    """bench/send_floor.py in a process of its own: what N bare send()s cost."""
    argv = [sys.executable, str(ROOT / "bench" / "send_floor.py"), "--sockets", str(n)]
    try:
        out = await run_bounded(argv, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, ROOT, 300)
    except (RuntimeError, OSError) as e:
        print(f"bench: send floor: {e!r}", file=sys.stderr, flush=True)
        return None
    m = re.search(r"one (\d+)-byte frame each, .*median ([\d.]+) CPU s per 10,000 frames", out)
    if m is None:
        print(f"bench: send floor: no figure in {out[-300:]!r}", file=sys.stderr, flush=True)
        return None
    return {"sockets": n, "frame_bytes": int(m.group(1)), "cpu_s_per_10k": float(m.group(2))}


async def main_async(a: argparse.Namespace) -> int:
    logs = a.results_dir / "logs"
    secret = secrets.token_urlsafe(36)
    users, sockets = users_and_sockets(a, secret)
    if any(s.startswith("pgbell") for s in a.systems):
        await fresh_pgbell_database(a.pgbell_url, secret)
    result = {
        "command": " ".join([".venv/bin/python", "bench/fanout.py", *sys.argv[1:]]),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "workload": {"sockets": a.sockets, "users": len(users), "per_user": a.per_user,
                     "client_procs": a.client_procs, "inflight": a.inflight},
        "runs": [],
        "problems": [],
    }  # fmt: skip
    for name in a.systems:
        try:
            result["runs"].append(await run_system(name, a, secret, users, sockets, logs))
        except (RuntimeError, OSError, aiohttp.ClientError, psycopg.Error) as e:
            print(f"bench: {name}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            result["problems"].append(f"{name}: {e}".splitlines()[0])
    result["send_floor"] = await send_floor(min(a.sockets, 15_000))
    result["machine"] = await asyncio.to_thread(report.machine, a.pgbell_url, Path("/nonexistent"))
    print()
    print(
        f"{a.sockets} sockets ({len(users)} users x {a.per_user}), clients offer permessage-deflate"
    )
    print(table(result["runs"]))
    if result["send_floor"] is not None:
        f = result["send_floor"]
        print(
            f"the kernel alone (bench/send_floor.py): one send() of a {f['frame_bytes']}-byte frame"
            f" on each of {f['sockets']} loopback sockets costs {f['cpu_s_per_10k']:.3f} CPU s"
            " per 10,000 frames (median of 5 rounds)"
        )
    if a.storm and result["runs"]:
        print("\nReconnect storm: every socket at once, with ?since= (scenario 3)")
        print(storm_table(result["runs"]))
    a.results_dir.mkdir(parents=True, exist_ok=True)
    path = a.results_dir / time.strftime("fanout-%Y%m%d-%H%M%S.json")
    path.write_text(json.dumps(result, indent=1))
    print(f"\nraw figures: {path}")
    if result["runs"]:
        from bench.plot import fanout_cdf  # matplotlib only when there is something to draw

        print(f"picture: {fanout_cdf(result['runs'], path.with_suffix('.png'))}")
    return 1 if result["problems"] else 0


def main() -> int:
    a = parse()
    # the servers inherit it: one socket is one open file
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop_task: asyncio.Task | None = None

    async def guarded() -> int:
        nonlocal loop_task
        loop_task = asyncio.current_task()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, loop_task.cancel)
        return await main_async(a)

    try:
        return asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\nbench: interrupted; servers and clients stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
