"""What pgbell's triggers cost a writer: pgbench commits/s, on and off.

A transaction that has called NOTIFY takes a global lock at commit and
holds it through the WAL flush, so notifying commits are serialised
(DESIGN.md, fact 1). pgbench inserts one deal per transaction, at 1 and
at 16 clients, in three set-ups of the same database:

- triggers on: what every writer pays with pgbell installed (the deal
  trigger writes one notification row per recipient, and the wake-up
  trigger on those rows calls pg_notify);
- no wake-up: the notification rows are written, the pg_notify is not, so
  the difference to "triggers on" is the NOTIFY alone;
- triggers off: `ALTER TABLE deals DISABLE TRIGGER USER`, a plain insert.

The pgbell server is stopped by then (it would compete for the same two
cores); a plain LISTEN session of our own keeps the queue read, as a
server would.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
from psycopg import sql

from bench.options import ROOT, require_loopback
from bench.systems import run_bounded

CANDIDATES = ("/usr/bin/pgbench", "/usr/lib/postgresql/15/bin/pgbench")
SCRIPT = """\
\\set owner random(:lo, :hi)
INSERT INTO deals (title, amount, owner_id) VALUES ('pgbench deal', 12000, :owner);
"""


def find_pgbench() -> str | None:
    for c in CANDIDATES:
        if Path(c).exists():
            return c
    return shutil.which("pgbench")


def _owner_range(dsn: str) -> tuple[int, int]:
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT min(id), max(id) FROM pgbell.users WHERE NOT 'manager' = ANY(roles)"
        ).fetchone()
    if row is None or row[0] is None:
        raise RuntimeError("no non-manager users to own the pgbench deals")
    return int(row[0]), int(row[1])


def _wake_triggers(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'pgbell.notifications'::regclass"
        " AND NOT tgisinternal AND tgname LIKE '%wake%' ORDER BY tgname"
    ).fetchall()
    return [r[0] for r in rows]


def _set_triggers(dsn: str, variant: str) -> None:
    """Put the triggers in the state `variant` needs (everything on first)."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute("ALTER TABLE deals ENABLE TRIGGER USER")
        for name in _wake_triggers(conn):
            conn.execute(
                sql.SQL("ALTER TABLE pgbell.notifications ENABLE TRIGGER {}").format(
                    sql.Identifier(name)
                )
            )
            if variant == "no wake-up":
                conn.execute(
                    sql.SQL("ALTER TABLE pgbell.notifications DISABLE TRIGGER {}").format(
                        sql.Identifier(name)
                    )
                )
        if variant == "triggers off":
            conn.execute("ALTER TABLE deals DISABLE TRIGGER USER")
        # every run starts from the same place, not in the middle of a checkpoint
        conn.execute("CHECKPOINT")


@contextlib.asynccontextmanager
async def _listening(dsn: str, seconds: float) -> AsyncIterator[list[int]]:
    """A LISTEN session draining the wake-ups during a run, as a server would."""
    from pgbell.bus.listener import CHANNEL

    count = [0]
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True, connect_timeout=5)

    async def drain() -> None:
        async for _ in conn.notifies(timeout=seconds):
            count[0] += 1

    try:
        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
        task = asyncio.get_running_loop().create_task(drain())
        try:
            yield count
        finally:
            task.cancel()
            await asyncio.wait([task], timeout=5)
    finally:
        await asyncio.wait_for(conn.close(), timeout=5)


async def _pgbench(
    binary: str, dsn: str, clients: int, seconds: float, lo: int, hi: int, script: Path
) -> dict:
    argv = [binary, "-n", "-c", str(clients), "-j", str(min(clients, 2))]
    argv += ["-T", str(int(seconds)), "-D", f"lo={lo}", "-D", f"hi={hi}", "-f", str(script), dsn]
    env = {"PATH": "/usr/bin:/bin", "PGCONNECT_TIMEOUT": "5"}
    out = await run_bounded(argv, env, ROOT, seconds + 60)
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


async def measure(dsn: str, clients: tuple[int, ...], seconds: float, workdir: Path) -> list[dict]:
    """pgbench every (variant, clients); triggers are left enabled afterwards."""
    script = workdir / "pgbench_insert_deal.sql"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(SCRIPT)
    require_loopback(dsn)
    binary = find_pgbench()
    if binary is None:
        raise RuntimeError("pgbench not found (apt-get install postgresql-client)")
    lo, hi = await asyncio.to_thread(_owner_range, dsn)
    rows: list[dict] = []
    try:
        for variant in ("triggers on", "no wake-up", "triggers off"):
            for c in clients:
                await asyncio.to_thread(_set_triggers, dsn, variant)
                async with _listening(dsn, seconds + 30) as wakeups:
                    figures = await _pgbench(binary, dsn, c, seconds, lo, hi, script)
                    await asyncio.sleep(0.2)  # the last wake-ups are on their way
                figures.update(variant=variant, clients=c, wakeups_received=wakeups[0])
                print(
                    f"  commit rate  {variant:<12} {c:>3} clients:"
                    f" {figures['commits_per_s']:>9.1f} commits/s",
                    flush=True,
                )
                rows.append(figures)
    finally:
        # the database is left as pgbell expects it, even after Ctrl-C
        await asyncio.to_thread(_set_triggers, dsn, "triggers on")
    return rows
