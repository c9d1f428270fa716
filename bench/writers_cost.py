"""What pgbell costs the transactions that write, all in: `make bench-writers`
(or `.venv/bin/python bench/writers_cost.py --help`; `make bench` runs it too).

pgbench commits one demo deal per transaction, the owner at random among
the non-managers; each deal notifies its owner and the 5 managers, 6
notification rows. Four set-ups, each at 1, 16 and 64 pgbench clients, in
3 rounds (--rounds) whose order rotates; the report compares the medians:

- plain: the same deal and the same 6 rows written by plain SQL into
  look-alike tables (bench/writers_sql.py): no pgbell function, no
  trigger, no NOTIFY;
- pgbell: the installed triggers, as any writer gets them, wake-up included;
- no wake-up: pgbell with every trigger on pgbell.notifications that calls
  pg_notify disabled, so that "pgbell against no wake-up" is the wake-up's
  cost; the server then finds the rows by polling, every 2 ms while rows
  keep coming and every 50 ms otherwise (PGBELL_POLL_INTERVAL=0.05), so
  that in both set-ups it delivers while the writers write;
- always notify: pgbell with its wake-up triggers replaced by one that
  calls pg_notify in every notifying transaction, as writers did before
  the adaptive wake-up (a server cannot make them: under load some writer
  always holds the window that keeps it awake).

All in: in every set-up `pgbell serve` runs (one process, started afresh
for each set-up) and every recipient holds a WebSocket, in a process of
its own (bench/writers_clients.py). After each run the harness waits,
bounded, until the sockets have the frames of every notification row the
run committed, and reports what never came. Last, the idle cost of an
awake server: its CPU and its PostgreSQL sessions' for 10 s asleep, then
for 10 s while a writer's transaction that wrote a notification stays open
(bench/writers_idle.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psycopg

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import cpu, report  # noqa: E402
from bench import writers_sql as wsql  # noqa: E402
from bench.clients import login_all  # noqa: E402
from bench.options import ROOT, require_loopback  # noqa: E402
from bench.procs import ServerProcess, free_port  # noqa: E402
from bench.systems import PGBELL, fresh_pgbell_database, insert_pgbell_users, run_bounded  # noqa: E402
from bench.writers_clients import Sockets  # noqa: E402
from bench.writers_idle import idle_cost, listener_counters  # noqa: E402

SETUPS = ("plain", "pgbell", "no wake-up", "always notify")
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/pgbell_bench_writers"
PGBENCH = ("/usr/bin/pgbench", "/usr/lib/postgresql/15/bin/pgbench")


@dataclass(frozen=True)
class Plan:
    url: str = DEFAULT_URL
    clients: tuple[int, ...] = (1, 16, 64)
    seconds: float = 12.0
    owners: int = 20
    managers: int = 5
    wait: float = 30.0  # at most, for a run's frames after pgbench ends
    idle_seconds: float = 10.0
    setups: tuple[str, ...] = SETUPS
    rounds: int = 3
    logs: Path = ROOT / "bench" / "results" / "logs"


@dataclass
class Server:
    proc: ServerProcess
    base: str
    env: dict[str, str] = field(default_factory=dict)


def find_pgbench() -> str:
    for c in PGBENCH:
        if Path(c).exists():
            return c
    found = shutil.which("pgbench")
    if found is None:
        raise RuntimeError("pgbench not found (apt-get install postgresql-client)")
    return found


async def pgbench(binary: str, plan: Plan, clients: int, lo: int, hi: int, script: Path) -> dict:
    # two threads at most: the machine has two cores
    argv = [binary, "-n", "-c", str(clients), "-j", str(min(clients, 2))]
    argv += ["-T", str(int(plan.seconds)), "-D", f"lo={lo}", "-D", f"hi={hi}"]
    argv += ["-f", str(script), plan.url]
    env = {"PATH": "/usr/bin:/bin", "PGCONNECT_TIMEOUT": "5"}
    out = await run_bounded(argv, env, ROOT, plan.seconds + 60)
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    done = re.search(r"number of transactions actually processed: (\d+)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    lat = re.search(r"latency average = ([\d.]+) ms", out)
    if tps is None:
        raise RuntimeError(f"could not read pgbench's tps:\n{out[-1500:]}")
    return {
        "commits_per_s": round(float(tps.group(1)), 1),
        "transactions": int(done.group(1)) if done else None,
        "failed": int(failed.group(1)) if failed else 0,
        "latency_avg_ms": float(lat.group(1)) if lat else None,
    }


async def _delivered(sockets: Sockets, owed: dict[str, int], wait: float) -> tuple[dict, float]:
    """What the sockets got since the run's reset, once every owed
    notification is in or after `wait` seconds."""
    t0 = time.monotonic()
    while True:
        got = await sockets.counts()
        if got["gone"]:
            raise RuntimeError(
                f"{got['gone']} sockets closed and could not resume: {got['errors']}"
            )
        short = {u: n - got["counts"][u] for u, n in owed.items() if got["counts"][u] < n}
        waited = time.monotonic() - t0
        if not short or waited >= wait:
            if short:
                print(f"    still missing after {wait:.0f} s, per recipient: {short}", flush=True)
            return got, waited
        await asyncio.sleep(0.25)


async def run_once(
    setup: str, clients: int, plan: Plan, srv: Server, sockets: Sockets,
    http: aiohttp.ClientSession, bench: tuple[str, int, int, Path], round_: int = 0,
) -> dict:  # fmt: skip
    binary, lo, hi, script = bench
    table = f"{wsql.PLAIN}.notifications" if setup == "plain" else "pgbell.notifications"
    await asyncio.to_thread(wsql.clear, plan.url)
    await sockets.counts(reset=True)
    m0, c0 = await listener_counters(http, srv.base), cpu.sample(srv.proc.pid)
    figures = await pgbench(binary, plan, clients, lo, hi, script)
    c1 = cpu.sample(srv.proc.pid)
    owed = await asyncio.to_thread(wsql.committed, plan.url, table)
    # the plain rows are in tables pgbell does not read: nothing is owed for them
    got, waited = await _delivered(sockets, {} if setup == "plain" else owed, plan.wait)
    c2, m1 = cpu.sample(srv.proc.pid), await listener_counters(http, srv.base)
    rows = sum(owed.values())
    counts = got["counts"]
    delivered = sum(counts.values())
    lost = None if setup == "plain" else sum(max(n - counts[u], 0) for u, n in owed.items())
    figures.update(
        setup=setup,
        clients=clients,
        round=round_,
        rows_committed=rows,
        frames_delivered=delivered,
        frames_lost=lost,
        frames_extra=sum(max(n - owed.get(u, 0), 0) for u, n in counts.items()),
        frames_duplicate=got["duplicates"],
        # sockets the server closed (by close code), each resumed with ?since=
        server_closes=got["closes"],
        delivery_wait_s=round(waited, 2),
        server_cpu_s_run=round(c1["server"] - c0["server"], 2),
        server_cpu_s=round(c2["server"] - c0["server"], 2),
        postgresql_cpu_s_run=round(c1["postgresql"] - c0["postgresql"], 2),
        server_notifies=int(m1.get("notifies", 0) - m0.get("notifies", 0)),
        server_fetches=int(m1.get("wakeups", 0) - m0.get("wakeups", 0)),
    )
    print(
        f"  {setup:<13} {clients:>2} clients, round {round_ + 1}:"
        f" {figures['commits_per_s']:>8.1f} commits/s,"
        f" rows {rows}, delivered {delivered}, lost {lost if lost is not None else '-'},"
        f" server CPU {figures['server_cpu_s']} s, NOTIFYs {figures['server_notifies']},"
        f" sockets closed {sum(got['closes'].values())}",
        flush=True,
    )
    return figures


async def start_server(plan: Plan, env: dict[str, str], setup: str, procs: list) -> Server:
    port = free_port()
    # with no wake-up at all a server finds rows only by polling: let it poll
    # as often as it may, so that it delivers while the writers write
    extra = {"PGBELL_POLL_INTERVAL": "0.05"} if setup == "no wake-up" else {}
    argv = [str(PGBELL), "serve", "--workers", "1", "--host", "127.0.0.1", "--port", str(port)]
    log = plan.logs / f"writers-{setup.replace(' ', '-')}.log"
    proc = ServerProcess("pgbell", argv, dict(env, **extra), ROOT, log)
    procs.append(proc)  # registered first: the caller stops it even if start-up fails
    await proc.start()
    base = f"http://127.0.0.1:{port}"
    await proc.wait_healthy(base, 120)
    return Server(proc, base, extra)


async def prepare(plan: Plan) -> tuple[dict[str, str], int, int]:
    """A fresh database: the demo, its users, the look-alike tables."""
    require_loopback(plan.url)
    env = await fresh_pgbell_database(plan.url, PGBELL_LOG_LEVEL="WARNING")
    # its last user is a manager as well (the REST benchmark's writer): the
    # first managers - 1 users and the last one make `managers` in all
    users = plan.owners + plan.managers
    await asyncio.to_thread(insert_pgbell_users, plan.url, users, plan.managers - 1)
    await asyncio.to_thread(wsql.create_lookalike, plan.url)
    with psycopg.connect(plan.url, connect_timeout=5) as conn:
        lo, hi = wsql.owner_range(conn)
        n = conn.execute("SELECT count(*) FROM pgbell.role_members('manager')").fetchone()[0]
    if n != plan.managers or hi - lo + 1 != plan.owners:
        raise RuntimeError(f"expected {plan.managers} managers and {plan.owners} owners")
    return env, lo, hi


@contextlib.asynccontextmanager
async def _serving(plan: Plan, env: dict, setup: str, procs: list, users: list):
    """A fresh server for `setup` and every recipient's socket on it; both
    stopped, and the wake-up triggers enabled again, on the way out."""
    srv = await start_server(plan, env, setup, procs)
    sockets = Sockets(plan.logs / "writers-sockets.log")
    try:
        if users:
            await sockets.open(f"ws{srv.base[4:]}/ws", [[str(u.id), u.token] for u in users])
        if setup == "no wake-up":
            await asyncio.to_thread(wsql.set_wake_triggers, plan.url, False)
        elif setup == "always notify":
            await asyncio.to_thread(wsql.set_always_notify, plan.url, True)
        yield srv, sockets
    finally:
        # the database is left as pgbell expects it, even after Ctrl-C
        if setup == "no wake-up":
            await asyncio.to_thread(wsql.set_wake_triggers, plan.url, True)
        elif setup == "always notify":
            await asyncio.to_thread(wsql.set_always_notify, plan.url, False)
        await sockets.close()
        await srv.proc.stop()


def order(setups: tuple[str, ...], round_: int) -> tuple[str, ...]:
    """The set-ups of one round: rotated by one place a round, so that no
    set-up always runs first, or always right after the same other one."""
    k = round_ % len(setups)
    return setups[k:] + setups[:k]


async def measure(plan: Plan, procs: list | None = None) -> dict:
    """Every (clients, round, set-up) run, then the idle cost; servers
    stopped after.

    The set-ups take turns at each client count, each with a server of its
    own started afresh: on a machine shared with other work, set-ups run
    minutes apart would be compared under different neighbours. One run
    moves by 10 to 20% on this machine, and a run in a fixed place (first,
    or right after another's heavy writing) can be slower every time; so
    each client count runs `rounds` rounds in rotated orders, and the
    report compares medians."""
    procs = [] if procs is None else procs
    binary = find_pgbench()
    env, lo, hi = await prepare(plan)
    scripts = await asyncio.to_thread(wsql.write_scripts, plan.logs.parent / "writers")
    with psycopg.connect(plan.url, connect_timeout=5) as conn:
        wake = wsql.wake_triggers(conn)
    print(f"writers: the wake-up triggers on pgbell.notifications: {wake}", flush=True)
    out: dict = {"runs": [], "idle": [], "owners": plan.owners, "managers": plan.managers,
                 "seconds": plan.seconds, "rounds": plan.rounds,
                 "wake_triggers": wake}  # fmt: skip
    names = [f"user{i}" for i in range(plan.owners + plan.managers)]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        # tokens outlive the server that issued them
        async with _serving(plan, env, "pgbell", procs, []) as (srv, _):
            users = list((await login_all(http, srv.base, names)).values())
        for c in plan.clients:
            for r in range(plan.rounds):
                for setup in order(plan.setups, r):
                    async with _serving(plan, env, setup, procs, users) as (srv, sockets):
                        script = scripts["plain" if setup == "plain" else "pgbell"]
                        bench = (binary, lo, hi, script)
                        figures = await run_once(setup, c, plan, srv, sockets, http, bench, r)
                        out["runs"].append(figures)
        if plan.idle_seconds > 0:
            async with _serving(plan, env, "pgbell", procs, users) as (srv, _):
                pid, seconds = srv.proc.pid, plan.idle_seconds
                out["idle"] = await idle_cost(plan.url, pid, srv.base, seconds, http)
    return out


def parse(argv: list[str] | None = None) -> tuple[Plan, Path]:
    p = argparse.ArgumentParser(
        prog="bench/writers_cost.py",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--clients", default="1,16,64", help="pgbench client counts")
    p.add_argument("--seconds", type=float, default=12.0, help="seconds per pgbench run")
    p.add_argument("--owners", type=int, default=20, help="non-managers owning the deals")
    p.add_argument("--managers", type=int, default=5, help="managers: every deal notifies them")
    p.add_argument("--wait", type=float, default=30.0, help="seconds a run's frames may take")
    p.add_argument("--idle-seconds", type=float, default=10.0, help="0 skips the idle cost")
    p.add_argument("--setups", default=",".join(SETUPS), help="set-ups to run, in order")
    p.add_argument("--rounds", type=int, default=3, help="rounds per client count, rotated")
    p.add_argument("--pgbell-url", default=DEFAULT_URL, help="DROPPED and recreated")
    p.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    a = p.parse_args(argv)
    try:
        clients = tuple(int(c) for c in a.clients.split(",") if c.strip())
    except ValueError:
        p.error(f"--clients: a comma-separated list of numbers, not {a.clients!r}")
    setups = tuple(s.strip() for s in a.setups.split(",") if s.strip())
    if not clients or any(not 1 <= c <= 90 for c in clients):
        p.error("--clients: each between 1 and 90 (PostgreSQL allows 100 connections)")
    if not setups or set(setups) - set(SETUPS):
        p.error(f"--setups: choose from {', '.join(SETUPS)}")
    if not 1 <= a.seconds <= 600 or not 5 <= a.wait <= 600 or not 0 <= a.idle_seconds <= 600:
        p.error("--seconds must be 1..600, --wait 5..600, --idle-seconds 0..600")
    if not 1 <= a.rounds <= 20:
        p.error("--rounds must be 1..20")
    if not 1 <= a.owners <= 1000 or not 1 <= a.managers <= 100:
        p.error("--owners must be 1..1000 and --managers 1..100")
    require_loopback(a.pgbell_url)
    plan = Plan(a.pgbell_url, clients, a.seconds, a.owners, a.managers, a.wait,
                a.idle_seconds, setups, a.rounds, a.results_dir / "logs")  # fmt: skip
    return plan, a.results_dir


async def _main(plan: Plan, results_dir: Path) -> int:
    # SIGTERM takes Ctrl-C's way out: every finally stops what was started
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    procs: list[ServerProcess] = []
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:
        figures = await measure(plan, procs)
    finally:
        for proc in procs:
            await proc.stop()
    figures["command"] = " ".join([".venv/bin/python", "bench/writers_cost.py", *sys.argv[1:]])
    figures["started_at"] = started
    figures["machine"] = await asyncio.to_thread(report.machine, plan.url, Path("/nonexistent"))
    print(report.render_writers(figures, figures["machine"].get("nproc", "?")))
    path = await asyncio.to_thread(save, figures, results_dir)
    print(f"\nraw figures: {path}")
    return 0


def save(figures: dict, results_dir: Path) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / time.strftime("writers-%Y%m%d-%H%M%S.json")
    path.write_text(json.dumps(figures, indent=1))
    return path


def main(argv: list[str] | None = None) -> int:
    plan, results_dir = parse(argv)
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        return asyncio.run(_main(plan, results_dir))
    print("\nbench: interrupted; servers stopped", file=sys.stderr)
    return 130


if __name__ == "__main__":
    sys.exit(main())
