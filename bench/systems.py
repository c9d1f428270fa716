"""Bring up the two systems under test with the same users.

Both get users user0..user{N-1}, password 'pw', the first M with the role
manager. The baseline seeds through its own seed.sh; pgbell gets a fresh
database (dropped and recreated every run, so that earlier runs cannot
weigh on the figures) and its users in one INSERT with one password hash,
because hashing each password with argon2 would take longer than a step.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench.options import ROOT, Options, require_loopback
from bench.procs import ServerProcess, free_port

BASELINE_DB_URL = "postgresql://postgres@127.0.0.1:5432/baseline_django"


# Each step starts with no notifications stored. Both servers count a
# recipient's unread notifications for every frame they send, a cost that
# grows with the unread backlog; without this reset a later step would pay
# for the earlier steps' rows and steps could not be compared.
CLEAR_PGBELL = ("DELETE FROM pgbell.notifications", "DELETE FROM pgbell.state_changes")
CLEAR_BASELINE = ("DELETE FROM notify_notification",)


@dataclass
class System:
    name: str
    base_url: str
    process: ServerProcess
    db_url: str
    clear: tuple[str, ...]
    dsn: str | None = None  # pgbell only: the SQL writer and pgbench use it

    def clear_notifications(self) -> int:
        """Delete every stored notification, then VACUUM; returns rows deleted."""
        deleted = 0
        with psycopg.connect(self.db_url, autocommit=True, connect_timeout=5) as conn:
            for statement in self.clear:
                deleted += conn.execute(statement).rowcount
                table = statement.rsplit(" ", 1)[-1]
                # dead index entries would still be walked by the unread counts
                conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.SQL(table)))
        return deleted


async def run_bounded(argv: list[str], env: dict[str, str], cwd: Path, timeout: float) -> str:
    """Run a set-up command to completion or kill it; return its output."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    except (TimeoutError, asyncio.CancelledError):
        # the whole group: seed.sh may be in the middle of a pip install
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), timeout=5)
        raise
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{text[-2000:]}")
    return text


def _admin_url(url: str) -> tuple[str, str]:
    params = conninfo_to_dict(url)
    name = params.pop("dbname", None)
    if not name:
        raise SystemExit(f"bench: {url} names no database")
    params["dbname"] = "postgres"
    return make_conninfo(**params), name


def recreate_database(url: str) -> None:
    admin, name = _admin_url(url)
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        # FORCE: a server left over from an interrupted run must not block the drop
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


PGBELL = ROOT / ".venv" / "bin" / "pgbell"


async def fresh_pgbell_database(url: str, secret: str = "", **settings: str) -> dict[str, str]:
    """Drop and recreate the database of `url`, migrate it with the demo,
    and return the environment `pgbell serve` runs with on it: DATABASE_URL,
    `secret` (a fresh one if empty) and `settings`."""
    if not PGBELL.exists():
        raise RuntimeError(f"{PGBELL} is missing: run `make venv` first")
    await asyncio.to_thread(recreate_database, url)
    env = dict(
        os.environ,
        DATABASE_URL=url,
        PGBELL_JWT_SECRET=secret or secrets.token_urlsafe(36),
        **settings,
    )
    await run_bounded([str(PGBELL), "migrate", "--demo"], env, ROOT, timeout=120)
    return env


def insert_pgbell_users(url: str, users: int, managers: int) -> None:
    from pgbell.passwords import hash_password  # pgbell's own hashing, so its login accepts it

    pw_hash = hash_password("pw")
    with psycopg.connect(url, connect_timeout=5) as conn:
        conn.execute(
            "INSERT INTO pgbell.users (username, password_hash, roles)"
            " SELECT 'user' || i, %s,"
            "        CASE WHEN i < %s OR i = %s - 1 THEN '{manager}'::text[] ELSE '{}'::text[] END"
            "   FROM generate_series(0, %s - 1) AS i ORDER BY i",
            # the writer (the last user) is a manager too: in the demo only a
            # manager creates deals for other owners. It holds no socket.
            (pw_hash, managers, users, users),
        )


async def start_pgbell(opts: Options, logs: Path, procs: list[ServerProcess]) -> System:
    require_loopback(opts.pgbell_url)
    env = await fresh_pgbell_database(
        opts.pgbell_url,
        # the baseline logs at WARNING without an access log; same here
        PGBELL_LOG_LEVEL="WARNING",
        # the writer creates hundreds of deals a second; the baseline has no limit
        PGBELL_DEALS_PER_MINUTE="1000000",
    )
    await asyncio.to_thread(insert_pgbell_users, opts.pgbell_url, opts.users, opts.managers)
    port = free_port()
    proc = ServerProcess(
        "pgbell",
        [str(PGBELL), "serve", "--workers", "1", "--host", "127.0.0.1", "--port", str(port)],
        env,
        ROOT,
        logs / "pgbell.log",
    )
    url = opts.pgbell_url
    system = System("pgbell", f"http://127.0.0.1:{port}", proc, url, CLEAR_PGBELL, dsn=url)
    procs.append(proc)  # registered first: the caller stops it even if start-up fails
    await proc.start()
    await proc.wait_healthy(system.base_url, opts.startup_timeout)
    return system


async def start_baseline(opts: Options, logs: Path, procs: list[ServerProcess]) -> System:
    here = opts.baseline_dir
    env = dict(os.environ)
    env.setdefault("BASELINE_DATABASE_URL", BASELINE_DB_URL)
    env.setdefault("BASELINE_REDIS_URL", "redis://127.0.0.1:6379/0")
    require_loopback(env["BASELINE_DATABASE_URL"])
    if not env["BASELINE_REDIS_URL"].startswith(("redis://127.0.0.1", "redis://localhost")):
        raise SystemExit("bench: BASELINE_REDIS_URL must point at loopback")
    # seed.sh builds the baseline's venv on first use: that can take minutes
    await run_bounded(
        [str(here / "seed.sh"), str(opts.users), str(opts.managers), "--reset"],
        env,
        here,
        timeout=opts.startup_timeout,
    )
    port = free_port()
    proc = ServerProcess(
        "baseline", [str(here / "run.sh"), str(port)], env, here, logs / "baseline.log"
    )
    url = env["BASELINE_DATABASE_URL"]
    system = System("baseline", f"http://127.0.0.1:{port}", proc, url, CLEAR_BASELINE)
    procs.append(proc)  # registered first: the caller stops it even if start-up fails
    await proc.start()
    await proc.wait_healthy(system.base_url, opts.startup_timeout)
    return system
