"""`pgbell check`: what must hold before `pgbell serve` starts, one line each.

It reads the environment `pgbell serve` reads and connects as the server
would (asyncpg, the same URLs). Each check prints one line, `ok: ...` or
`problem: ...`; one problem is one line, and any problem makes the exit
status 1. The checks: the configuration and the token key sources, that
DATABASE_URL (and PGBELL_LISTEN_DATABASE_URL) answer, the schema version
against this pgbell's migrations, the roles pgbell_writer and
pgbell_server, the fill level of PostgreSQL's NOTIFY queue, and what sits
between each URL and PostgreSQL.

That last one cannot ask PgBouncer (its SHOW POOL_MODE is for its admin
console, not for a client). It watches instead: one client connection
notes its backend's pid, then other connections open a transaction each
and report theirs. PostgreSQL and session pooling tie a client to its
backend for good, so no one else ever gets that pid; a transaction-mode
pooler lends the backend out as soon as the client's transaction ends
(PgBouncer hands out the idle one it used last: the first holder gets it),
and the client's own next transaction may run on another backend.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import asyncpg

from pgbell import schema
from pgbell.config import DEFAULT_STATEMENT_CACHE, ConfigError, Settings
from pgbell.jwks import ASYMMETRIC_ALGS, JwksCache
from pgbell.ops.migrate import ROLES
from pgbell.sql import Q

TIMEOUT = 5.0
# transactions held open while watching for a lent-out backend
HOLDERS = 3
QUEUE_WARN = 0.5


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    problems: int = 0

    def ok(self, text: str) -> None:
        self.lines.append(f"ok: {text}")

    def problem(self, text: str) -> None:
        self.problems += 1
        self.lines.append(f"problem: {text}")


def label(url: str) -> str:
    """Where a URL points, without its user or password."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2] or parse_qs(parts.query).get("host", ["?"])[0]
    return f"{host}{parts.path}"


async def _connect(url: str) -> asyncpg.Connection:
    # no statement cache: this may be a transaction pooler, which is the question
    return await asyncpg.connect(
        url,
        timeout=TIMEOUT,
        statement_cache_size=0,
        server_settings={"application_name": "pgbell-check"},
    )


async def transaction_pooled(url: str) -> bool:
    """True when one client's transactions can run on different backends:
    the URL reaches a transaction-mode (or statement-mode) pooler."""
    client = await _connect(url)
    holders: list[tuple[asyncpg.Connection, asyncpg.transaction.Transaction]] = []
    try:
        first = await client.fetchval(Q.backend_pid, timeout=TIMEOUT)
        for _ in range(HOLDERS):
            holder = await _connect(url)
            tx = holder.transaction()
            holders.append((holder, tx))
            await tx.start()
            if await holder.fetchval(Q.backend_pid, timeout=TIMEOUT) == first:
                return True  # the client's backend went to another client
        return await client.fetchval(Q.backend_pid, timeout=TIMEOUT) != first
    finally:
        for holder, tx in holders:
            try:
                await tx.rollback()  # a clean release: the pooler keeps the backend
                await holder.close(timeout=TIMEOUT)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                holder.terminate()
        await client.close(timeout=TIMEOUT)


def _configuration(env: Mapping[str, str], report: Report) -> Settings | None:
    try:
        settings = Settings.from_env(dict(env))
    except ConfigError as e:
        report.problem(f"configuration: {e}")
        return None
    listen = (
        "PGBELL_LISTEN_DATABASE_URL " + label(settings.listen_database_url)
        if settings.listen_database_url != settings.database_url
        else "DATABASE_URL"
    )
    n = settings.workers
    report.ok(
        f"configuration: DATABASE_URL {label(settings.database_url)}"
        f" (PGBELL_DB_POOL_MODE={settings.db_pool_mode},"
        f" statement cache {settings.db_statement_cache}), LISTEN through {listen};"
        # every worker has its own pool and LISTEN connection
        f" {n} worker{'s' if n > 1 else ''}: at most {n * settings.db_pool_max} pool"
        f" and {n} LISTEN connection{'s' if n > 1 else ''}"
    )
    return settings


async def _key_sources(settings: Settings, report: Report) -> None:
    sources = []
    if settings.jwt_secret:
        sources.append("PGBELL_JWT_SECRET (HS256)")
    if settings.jwt_public_key:
        sources.append("PGBELL_JWT_PUBLIC_KEY")
    if settings.jwt_jwks_url:
        cache = JwksCache(settings.jwt_jwks_url, timeout=TIMEOUT)
        try:
            found = 0
            for alg in sorted(ASYMMETRIC_ALGS):
                found += len(await cache.keys(alg, None) or [])
            failed = cache.stats.jwks_failures
        finally:
            await cache.close()
        where = label(settings.jwt_jwks_url)
        if failed:
            report.problem(f"key sources: PGBELL_JWT_JWKS_URL {where} could not be fetched")
            return
        if not found:
            report.problem(f"key sources: PGBELL_JWT_JWKS_URL {where} holds no usable signing key")
            return
        sources.append(f"PGBELL_JWT_JWKS_URL ({found} keys)")
    report.ok("key sources: " + ", ".join(sources))


async def _schema(conn: asyncpg.Connection, report: Report) -> bool:
    current = None
    if await conn.fetchval(Q.version_table_exists) is not None:
        current = [r["version_num"] for r in await conn.fetch(Q.schema_versions)]
    try:
        verdict = schema.check(current)
    except schema.SchemaError as e:
        report.problem(f"schema: {e}")
        return False
    note = "".join(f" (warning: {w})" for w in verdict.warnings)
    report.ok(f"schema: at {', '.join(current or [])}, what this pgbell needs{note}")
    return True


async def _roles(conn: asyncpg.Connection, report: Report, schema_ok: bool) -> None:
    fine = []
    for row in await conn.fetch(Q.role_grants, list(ROLES)):
        name = row["name"]
        if not row["present"]:
            report.problem(
                f"roles: the role {name} does not exist: run `pgbell migrate` as a login that"
                f" may create roles, or have a DBA run CREATE ROLE {name} NOLOGIN;"
                " then `pgbell migrate` again"
            )
        elif schema_ok and not row["granted"]:
            report.problem(
                f"roles: {name} holds no privileges in this database:"
                " run `pgbell migrate` again, which grants them"
            )
        else:
            fine.append(name)
    if fine:
        report.ok(f"roles: {' and '.join(fine)} in place")


async def _queue(conn: asyncpg.Connection, report: Report) -> None:
    usage = await conn.fetchval(Q.notification_queue_usage)
    text = f"{usage:.1%} of PostgreSQL's NOTIFY queue is in use"
    if usage >= QUEUE_WARN:
        report.problem(
            f"notify queue: {text}: a session that LISTENs is not reading (see pg_stat_activity);"
            " when it is full, every notifying COMMIT fails"
        )
    else:
        report.ok(f"notify queue: {text}")


async def _reach(url: str, name: str, report: Report) -> asyncpg.Connection | None:
    try:
        conn = await _connect(url)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        report.problem(f"database: cannot reach {name} {label(url)}: {e}")
        return None
    version = await conn.fetchval(Q.server_version)
    report.ok(f"database: {name} {label(url)} answers (PostgreSQL {version})")
    return conn


async def _pooled(url: str, name: str, report: Report) -> bool | None:
    try:
        return await transaction_pooled(url)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        report.problem(f"pooling: could not tell what {name} {label(url)} reaches: {e}")
        return None


async def run(env: Mapping[str, str]) -> Report:
    report = Report()
    settings = _configuration(env, report)
    if settings is not None:
        await _key_sources(settings, report)
    pool_url = settings.database_url if settings else env.get("DATABASE_URL", "")
    if not pool_url:
        return report  # the configuration line said so
    listen_url = (
        settings.listen_database_url
        if settings
        else env.get("PGBELL_LISTEN_DATABASE_URL", "") or pool_url
    )
    conn = await _reach(pool_url, "DATABASE_URL", report)
    if conn is None:
        return report
    try:
        schema_ok = await _schema(conn, report)
        await _roles(conn, report, schema_ok)
        await _queue(conn, report)
    finally:
        await conn.close()
    if listen_url != pool_url:
        listen_conn = await _reach(listen_url, "PGBELL_LISTEN_DATABASE_URL", report)
        if listen_conn is None:
            return report
        await listen_conn.close()
    await _pooling(settings, pool_url, listen_url, report)
    return report


async def _pooling(
    settings: Settings | None, pool_url: str, listen_url: str, report: Report
) -> None:
    pool_pooled = await _pooled(pool_url, "DATABASE_URL", report)
    cache = settings.db_statement_cache if settings else DEFAULT_STATEMENT_CACHE
    mode = settings.db_pool_mode if settings else "direct"
    if pool_pooled and cache and mode != "transaction":
        report.problem(
            f"pooling: DATABASE_URL {label(pool_url)} reaches a transaction-mode pooler but"
            f" asyncpg's statement cache is on ({cache}): set PGBELL_DB_POOL_MODE=transaction"
        )
    elif pool_pooled is not None:
        what = "a transaction-mode pooler" if pool_pooled else "one backend per connection"
        report.ok(f"pooling: DATABASE_URL reaches {what}, statement cache {cache}")
    if listen_url == pool_url:
        listen_pooled, name = pool_pooled, "DATABASE_URL (PGBELL_LISTEN_DATABASE_URL is unset)"
    else:
        listen_pooled = await _pooled(listen_url, "PGBELL_LISTEN_DATABASE_URL", report)
        name = "PGBELL_LISTEN_DATABASE_URL"
    if listen_pooled:
        report.problem(
            f"listener: {name} {label(listen_url)} reaches a transaction-mode pooler, where"
            " LISTEN hears nothing once its transaction ends: point PGBELL_LISTEN_DATABASE_URL"
            " at PostgreSQL directly or at a session-mode pool"
        )
    elif listen_pooled is not None:
        report.ok("listener: its URL keeps one backend per connection, as LISTEN needs")


def main(env: Mapping[str, str] | None = None) -> int:
    report = asyncio.run(run(os.environ if env is None else env))
    for line in report.lines:
        print(line)
    return 1 if report.problems else 0
