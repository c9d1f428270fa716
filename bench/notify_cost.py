"""What pgbell.notify costs a writer, per notification row, v1, v2 and v3.

Three fresh databases migrated with the demo (`pgbell migrate --demo`): one
taken back down to migration 0001 / demo_0001 (v1: the PL/pgSQL render
loop, one pgbell.notify call per deal, an EXCEPTION block per statement),
one to 0003 / demo_0002 (v2: pgbell.notify_many, one INSERT per statement,
notify_one_v1 for a one-deal statement), one left at the head (v3:
notify_one_v2, render_one_v2, the helpers inlined, migration 0004).
In each, the same writes go through the demo's trigger on public.deals and,
as the reference, through plain SQL into look-alike tables (plain.deals and
plain.notifications: same columns, defaults, checks, indexes and foreign
key, no trigger and no pgbell function) that receive the same rows.

  single: INSERT of one deal, one statement at a time (prepared), all in
          one transaction;
  txn:    the same, each deal its own transaction (synchronous_commit off,
          so that the WAL flush does not drown the difference): what a
          writer pays once per transaction shows here, not in `single`;
  bulk:   INSERT INTO deals ... SELECT of 1,000 deals, one statement.

Every deal gives 1 + MANAGERS notification rows. NOTIFY is out of the way:
every trigger on pgbell.notifications whose function calls pg_notify is
disabled, so what is measured is the writer's statement, not the commit
lock (bench/commit_rate.py measures that). Each figure is the median of
ROUNDS rounds, in microseconds per notification row.

    .venv/bin/python -m bench.notify_cost [--url postgresql://.../pgbell_bench_notify]

needs no pgbell server. The databases `<name>_v1`, `<name>_v2` and
`<name>_v3` are DROPPED and recreated on every run, and dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from bench.options import require_loopback
from bench.systems import _admin_url, fresh_pgbell_database
from bench.writers_sql import set_wake_triggers
from pgbell.ops import migrate

OWNERS = 10
MANAGERS = 2
ROWS_PER_DEAL = 1 + MANAGERS
SINGLES = 300
BULK = 1_000
ROUNDS = 7
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/pgbell_bench_notify"
VERSIONS = ("v1", "v2", "v3")
DOWN_TO = {"v1": ("demo_0001", "0001"), "v2": ("demo_0002", "0003"), "v3": ()}
SHAPES = {"single": "single-deal INSERTs", "txn": "single-deal transactions", "bulk": ""}

LOOK_ALIKES = """
CREATE SCHEMA plain;
CREATE TABLE plain.deals (LIKE public.deals INCLUDING ALL);
ALTER TABLE plain.deals ADD FOREIGN KEY (owner_id) REFERENCES pgbell.users (id),
                        ADD FOREIGN KEY (created_by) REFERENCES pgbell.users (id);
CREATE TABLE plain.notifications (LIKE pgbell.notifications INCLUDING ALL);
"""

# The rows the demo's trigger writes for a deal, written by the writer itself:
# the template's text spelled out, the recipients known in advance.
PLAIN_ROWS = """
INSERT INTO plain.notifications (user_id, kind, title, body, priority, action_url, data)
SELECT r.id, 'deal_created', 'New deal: ' || d.title,
       d.title || ', ' || to_char(d.amount, 'FM999,999,999,999,990.00'), 'normal',
       '/deals/' || d.id,
       jsonb_build_object('deal_id', d.id, 'title', d.title, 'amount', d.amount,
                          'owner_id', d.owner_id)
  FROM d CROSS JOIN LATERAL (SELECT d.owner_id::text
                             UNION SELECT unnest(%(managers)s::text[])) AS r (id)
 ORDER BY d.id, r.id
"""
SINGLE = {
    "pgbell": "INSERT INTO public.deals (title, amount, owner_id)"
    " VALUES (%(title)s, 12000, %(owner)s)",
    "plain": "WITH d AS (INSERT INTO plain.deals (title, amount, owner_id)"
    " VALUES (%(title)s, 12000, %(owner)s) RETURNING *)" + PLAIN_ROWS,
}
BULK_SELECT = (
    f" SELECT 'Bulk ' || g, g, (%(owners)s::bigint[])[1 + g %% {OWNERS}]"
    f" FROM generate_series(1, {BULK}) AS g"
)
BULKS = {
    "pgbell": "INSERT INTO public.deals (title, amount, owner_id)" + BULK_SELECT,
    "plain": "WITH d AS (INSERT INTO plain.deals (title, amount, owner_id)"
    + BULK_SELECT
    + " RETURNING *)"
    + PLAIN_ROWS,
}


def _with_name(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def _prepare(url: str, version: str) -> dict:
    """Migrate a fresh database to `version`, add users and look-alike
    tables, and take NOTIFY out of the way."""
    asyncio.run(fresh_pgbell_database(url))
    # down to an earlier release, through the migrations' own downgrades
    for revision in DOWN_TO[version]:
        migrate.downgrade(url, revision)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pgbell.users (username, password_hash, roles)"
            " SELECT 'user' || i, '-', CASE WHEN i < %s THEN '{manager}'::text[] ELSE '{}' END"
            "   FROM generate_series(0, %s - 1) AS i",
            (MANAGERS, MANAGERS + OWNERS),
        )
        conn.execute(LOOK_ALIKES)
        users = conn.execute(
            "SELECT array_agg(id ORDER BY id) FILTER (WHERE roles = '{}'),"
            "       array_agg(id::text ORDER BY id) FILTER (WHERE roles <> '{}')"
            "  FROM pgbell.users"
        ).fetchone()
        revisions = migrate.current_revisions(url)
    # NOTIFY out of the way: the triggers that call pg_notify, directly or not
    set_wake_triggers(url, False)
    return {"owners": users[0], "managers": users[1], "revisions": sorted(revisions or [])}


def _clear(conn: psycopg.Connection) -> None:
    conn.execute(
        "TRUNCATE pgbell.notifications, pgbell.template_problems, plain.notifications,"
        " plain.deals, public.deals CASCADE"
    )
    conn.commit()


def _round(conn: psycopg.Connection, path: str, shape: str, users: dict) -> tuple[float, int]:
    """One round: seconds spent in the statements, notification rows written."""
    table = "pgbell.notifications" if path == "pgbell" else "plain.notifications"
    _clear(conn)
    if shape in ("single", "txn"):
        owners = users["owners"]
        params = [
            {"title": f"Deal {i}", "owner": owners[i % len(owners)], "managers": users["managers"]}
            for i in range(SINGLES)
        ]
        statement = SINGLE[path]
        conn.execute(statement, params[0], prepare=True)  # planned before the clock starts
        conn.rollback()
        started = time.perf_counter()
        for p in params:
            conn.execute(statement, p, prepare=True)
            if shape == "txn":
                conn.commit()
        spent = time.perf_counter() - started
    else:
        started = time.perf_counter()
        conn.execute(BULKS[path], {"owners": users["owners"], "managers": users["managers"]})
        spent = time.perf_counter() - started
    rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(table))).fetchone()[0]
    conn.commit()
    return spent, rows


def measure(prepared: dict[str, tuple[str, dict]]) -> dict[str, dict[tuple[str, str], float]]:
    """Median microseconds per notification row of each version, (shape,
    path); the versions take turns in every round, so that a change in the
    machine's load between rounds touches them all alike."""
    per_row: dict[str, dict[tuple[str, str], list[float]]] = {v: {} for v in prepared}
    conns = {v: psycopg.connect(url) for v, (url, _) in prepared.items()}
    try:
        for conn in conns.values():
            conn.execute("SET synchronous_commit = off")
            conn.commit()
        for _ in range(ROUNDS):
            for shape in SHAPES:
                for version, conn in conns.items():
                    users = prepared[version][1]
                    for path in ("pgbell", "plain"):
                        spent, rows = _round(conn, path, shape, users)
                        deals = BULK if shape == "bulk" else SINGLES
                        if rows != deals * ROWS_PER_DEAL:
                            raise RuntimeError(
                                f"{version} {path} {shape}: {rows} notification rows,"
                                f" not {deals * ROWS_PER_DEAL}"
                            )
                        per_row[version].setdefault((shape, path), []).append(spent / rows * 1e6)
    finally:
        for conn in conns.values():
            conn.close()
    return {
        v: {key: statistics.median(values) for key, values in figures.items()}
        for v, figures in per_row.items()
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--url",
        default=os.environ.get("PGBELL_BENCH_NOTIFY_URL", DEFAULT_URL),
        help="base database URL; <name>_v1, _v2 and _v3 are DROPPED and recreated",
    )
    a = p.parse_args()
    require_loopback(a.url)
    name = conninfo_to_dict(a.url).get("dbname") or "pgbell_bench_notify"
    urls = {v: _with_name(a.url, f"{name}_{v}") for v in VERSIONS}
    try:
        prepared = {}
        for version, url in urls.items():
            users = _prepare(url, version)
            print(f"{version}: {urlsplit(url).path[1:]} at {', '.join(users['revisions'])}")
            prepared[version] = (url, users)
        results = measure(prepared)
    finally:
        for url in urls.values():
            admin, db = _admin_url(url)
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db))
                )
    print(
        f"\nmicroseconds per notification row ({ROWS_PER_DEAL} rows per deal; median of"
        f" {ROUNDS} rounds; NOTIFY off)\n"
    )
    header = f"{'':28}" + "".join(f"{v:>9}" for v in VERSIONS) + f"{'plain':>9}"
    print(header + "".join(f"{v + '-plain':>10}" for v in VERSIONS))
    for shape, what in SHAPES.items():
        label = f"1 INSERT of {BULK:,} deals" if shape == "bulk" else f"{SINGLES} {what}"
        ours = [results[v][(shape, "pgbell")] for v in VERSIONS]
        plain = statistics.mean(results[v][(shape, "plain")] for v in VERSIONS)
        print(
            f"{label:28}"
            + "".join(f"{x:9.1f}" for x in ours)
            + f"{plain:9.1f}"
            + "".join(f"{x - plain:10.1f}" for x in ours)
        )


if __name__ == "__main__":
    main()
