"""The idle cost of `pgbell serve`, for bench/writers_cost.py: CPU per
second of the server process and of its own PostgreSQL sessions (listener
and pool, found in pg_stat_activity by an application_name starting with
'pgbell', read from /proc/<pid>/stat), first asleep, then while a writer's
transaction that wrote a notification row stays open. An adaptive server
stays awake, polling, while such a transaction may still commit: this is
what that costs when nothing else happens.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import psycopg

from bench import cpu
from bench import writers_sql as wsql

# the open transaction of the idle measurement: one row for a user with no socket
IDLE_NOTIFY = (
    "SELECT pgbell.notify('deal_created', ARRAY['nobody'],"
    """ data => '{"title": "x", "amount": 1, "deal_id": 0, "owner_id": 0}')"""
)
# asleep: at most one fetch (the safety poll) in a window this long
ASLEEP_WINDOW_S, ASLEEP_WAIT_S = 2.0, 60.0


async def listener_counters(http: aiohttp.ClientSession, base: str) -> dict[str, float]:
    """The listener's counters: NOTIFYs received and fetches run."""
    async with http.get(f"{base}/metrics") as r:
        text = await r.text()
    wanted = ("pgbell_listener_notifies_total", "pgbell_listener_wakeups_total")
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            out[name.split("_")[2]] = float(value)
    return out


def _proc_cpu(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        s = cpu._stat(pid)  # the harness's one reader of /proc/<pid>/stat
        if s is not None:
            out[pid] = s[2]
    return out


async def _asleep(http: aiohttp.ClientSession, base: str) -> float | None:
    """Wait (bounded) until the server stops fetching; seconds waited, None if it never did."""
    t0 = time.monotonic()
    last = (await listener_counters(http, base)).get("wakeups", 0)
    while time.monotonic() - t0 < ASLEEP_WAIT_S:
        await asyncio.sleep(ASLEEP_WINDOW_S)
        now = (await listener_counters(http, base)).get("wakeups", 0)
        if now - last <= 1:
            return round(time.monotonic() - t0, 1)
        last = now
    print(f"  idle: the server was still fetching after {ASLEEP_WAIT_S:.0f} s", flush=True)
    return None


async def idle_cost(
    url: str, pid: int, base: str, seconds: float, http: aiohttp.ClientSession
) -> list[dict]:
    """CPU per second of the server and of its PostgreSQL sessions, asleep,
    then while a writer's transaction holding a notification row stays open."""
    rows = []
    went_to_sleep_after = await _asleep(http, base)
    watch = await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=5)
    writer = await psycopg.AsyncConnection.connect(url, connect_timeout=5)
    try:
        for state in ("asleep, no transaction open", "a writer's transaction open"):
            if state.startswith("a writer"):
                await writer.execute(IDLE_NOTIFY)  # not committed: rolled back below
            backends = await wsql.server_backends(watch)
            m0 = await listener_counters(http, base)
            b0, s0, t0 = _proc_cpu(backends), cpu.sample(pid), time.monotonic()
            await asyncio.sleep(seconds)
            b1, s1, t1 = _proc_cpu(backends), cpu.sample(pid), time.monotonic()
            m1 = await listener_counters(http, base)
            wall = t1 - t0
            rows.append(
                {
                    "state": state,
                    "seconds": round(wall, 1),
                    "asleep_after_s": went_to_sleep_after,
                    "fetches": int(m1.get("wakeups", 0) - m0.get("wakeups", 0)),
                    "server_cpu_per_s": round((s1["server"] - s0["server"]) / wall, 4),
                    "backends": len(b1),
                    "backends_cpu_per_s": round(
                        sum(b1[p] - b0[p] for p in b1 if p in b0) / wall, 4
                    ),
                }
            )
            print(
                f"  idle, {state}: server {rows[-1]['server_cpu_per_s']} CPU s/s,"
                f" {len(b1)} backends {rows[-1]['backends_cpu_per_s']} CPU s/s,"
                f" {rows[-1]['fetches']} fetches",
                flush=True,
            )
        await writer.rollback()
    finally:
        await writer.close()
        await watch.close()
    return rows
