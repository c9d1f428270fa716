"""The writing side: create deals at a fixed rate, stamp each send.

Open loop: deal i is due at start + i / rate whether or not earlier ones
have been answered, so a slow server cannot slow the writer down and hide
its own latency. Only `max_inflight` may be outstanding at once (a bound,
not a pacing device); when that bound is hit the schedule slips, and the
slip plus the achieved rate are what saturation looks like.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import psycopg

REQUEST_TIMEOUT = 30.0
# A saturated server makes the schedule slip; past duration + this, the
# writer gives up on the rest (counted as unsent) so every step ends on time.
SEND_SLACK = 2.0


@dataclass(frozen=True, slots=True)
class Sent:
    deal_id: int
    owner_id: int
    t: float  # perf_counter(): POST sent (http) or COMMIT sent (sql)
    ack: float  # perf_counter(): 201 received (http) or COMMIT returned (sql)


@dataclass
class WriteResult:
    attempted: int = 0
    sent: list[Sent] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    started: float = 0.0
    finished: float = 0.0
    max_slip: float = 0.0  # worst lateness of a send against its schedule, seconds
    unsent: int = 0  # scheduled but dropped because the schedule slipped too far

    @property
    def achieved_rate(self) -> float:
        span = self.finished - self.started
        return len(self.sent) / span if span > 0 else 0.0


async def _paced(
    rate: float,
    duration: float,
    max_inflight: int,
    one: Callable[[int], Awaitable[Sent]],
) -> WriteResult:
    result = WriteResult()
    count = max(1, int(rate * duration))
    sem = asyncio.Semaphore(max_inflight)
    tasks: list[asyncio.Task[None]] = []

    async def run(i: int) -> None:
        try:
            result.sent.append(await asyncio.wait_for(one(i), timeout=REQUEST_TIMEOUT))
        except TimeoutError:
            result.errors["timeout"] += 1
        except (aiohttp.ClientError, OSError, psycopg.Error, RuntimeError) as e:
            result.errors[_short(e)] += 1
        finally:
            result.finished = time.perf_counter()
            sem.release()

    result.started = time.perf_counter()
    loop = asyncio.get_running_loop()
    for i in range(count):
        due = result.started + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        # bounded: each holder releases within REQUEST_TIMEOUT
        await sem.acquire()
        if time.perf_counter() > result.started + duration + SEND_SLACK:
            sem.release()
            result.unsent = count - i
            break
        result.max_slip = max(result.max_slip, time.perf_counter() - due)
        result.attempted += 1
        tasks.append(loop.create_task(run(i)))
    if tasks:
        await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT + 5)
    for t in tasks:
        t.cancel()
    return result


def _short(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text[:80]}".rstrip(": ")


async def http_writer(
    http: aiohttp.ClientSession,
    base_url: str,
    token: str,
    owners: list[int],
    rate: float,
    duration: float,
    max_inflight: int,
    tag: str,
) -> WriteResult:
    """POST /deals at `rate` per second; latency is measured from the send."""
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{base_url}/deals"

    async def one(i: int) -> Sent:
        owner = owners[i % len(owners)]
        body = {"title": f"bench {tag} #{i}", "amount": 12000, "owner_id": owner}
        t = time.perf_counter()
        async with http.post(url, json=body, headers=headers) as r:
            payload = await r.json(content_type=None)
            if r.status != 201:
                code = (payload or {}).get("error", {}).get("code", "?")
                raise RuntimeError(f"HTTP {r.status} {code}")
        return Sent(int(payload["deal"]["id"]), owner, t, time.perf_counter())

    return await _paced(rate, duration, max_inflight, one)


async def sql_writer(
    dsn: str,
    owners: list[int],
    rate: float,
    duration: float,
    conns: int,
    tag: str,
) -> WriteResult:
    """INSERT INTO deals over psycopg; latency is measured from sending COMMIT.

    The notification rows and the NOTIFY happen in pgbell's triggers inside
    this transaction, so COMMIT is the moment they become visible.
    """
    pool: asyncio.Queue[psycopg.AsyncConnection] = asyncio.Queue()
    opened: list[psycopg.AsyncConnection] = []
    try:
        for _ in range(conns):
            conn = await psycopg.AsyncConnection.connect(dsn, connect_timeout=10)
            opened.append(conn)
            pool.put_nowait(conn)

        async def one(i: int) -> Sent:
            owner = owners[i % len(owners)]
            conn = await pool.get()
            try:
                cur = await conn.execute(
                    "INSERT INTO deals (title, amount, owner_id) VALUES (%s, %s, %s) RETURNING id",
                    (f"bench {tag} #{i}", 12000, owner),
                )
                row = await cur.fetchone()
                t = time.perf_counter()
                await conn.commit()
                acked = time.perf_counter()
            except BaseException:
                # a cancelled or failed transaction leaves the session unusable
                # mid-protocol; it is dropped from the pool rather than reused
                await _discard(conn)
                raise
            pool.put_nowait(conn)
            assert row is not None
            return Sent(int(row[0]), owner, t, acked)

        # the connections are the in-flight bound: more tasks would only queue
        return await _paced(rate, duration, conns, one)
    finally:
        for conn in opened:
            await _discard(conn)


async def _discard(conn: psycopg.AsyncConnection) -> None:
    try:
        await asyncio.wait_for(conn.close(), timeout=5)
    except (TimeoutError, psycopg.Error, OSError):
        pass
