"""What pgbell.notify costs a writer, per notification row, v1 against v2.

Two fresh databases migrated with the demo (`pgbell migrate --demo`): one
taken back down to migration 0001 / demo_0001 (v1: the PL/pgSQL render
loop, one pgbell.notify call per deal, an EXCEPTION block per statement),
one left at the head (v2: pgbell.notify_many, one INSERT per statement).
In each, the same writes go through the demo's trigger on public.deals and,
as the reference, through plain SQL into look-alike tables (plain.deals and
plain.notifications: same columns, defaults, checks, indexes and foreign
key, no trigger and no pgbell function) that receive the same rows.

  single: INSERT of one deal, one statement at a time (prepared);
  bulk:   INSERT INTO deals ... SELECT of 1,000 deals, one statement.

Every deal gives 1 + MANAGERS notification rows. NOTIFY is out of the way:
every trigger on pgbell.notifications whose function calls pg_notify is
disabled, so what is measured is the writer's statement, not the commit
lock (bench/commit_rate.py measures that). The statements of a round run
in one transaction, committed after the round (the commit's WAL flush is
the same for every variant and would drown the difference); each figure is
the median of ROUNDS rounds, in microseconds per notification row.

    .venv/bin/python -m bench.notify_cost [--url postgresql://.../pgbell_bench_notify]

needs no pgbell server. The databases `<name>_v1` and `<name>_v2` are
DROPPED and recreated on every run, and dropped at the end.
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
    if version == "v1":
        # down to the first release, through the migrations' own downgrades
        migrate.downgrade(url, "demo_0001")
        migrate.downgrade(url, "0001")
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
    if shape == "single":
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
        spent = time.perf_counter() - started
    else:
        started = time.perf_counter()
        conn.execute(BULKS[path], {"owners": users["owners"], "managers": users["managers"]})
        spent = time.perf_counter() - started
    rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(table))).fetchone()[0]
    conn.commit()
    return spent, rows


def measure(url: str, users: dict) -> dict[tuple[str, str], float]:
    """Median microseconds per notification row of each (shape, path)."""
    per_row: dict[tuple[str, str], list[float]] = {}
    with psycopg.connect(url) as conn:
        for _ in range(ROUNDS):
            for shape in ("single", "bulk"):
                for path in ("pgbell", "plain"):
                    spent, rows = _round(conn, path, shape, users)
                    deals = SINGLES if shape == "single" else BULK
                    if rows != deals * ROWS_PER_DEAL:
                        raise RuntimeError(
                            f"{path} {shape}: {rows} notification rows, not {deals * ROWS_PER_DEAL}"
                        )
                    per_row.setdefault((shape, path), []).append(spent / rows * 1e6)
    return {key: statistics.median(values) for key, values in per_row.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--url",
        default=os.environ.get("PGBELL_BENCH_NOTIFY_URL", DEFAULT_URL),
        help="base database URL; <name>_v1 and <name>_v2 are DROPPED and recreated",
    )
    a = p.parse_args()
    require_loopback(a.url)
    name = conninfo_to_dict(a.url).get("dbname") or "pgbell_bench_notify"
    urls = {v: _with_name(a.url, f"{name}_{v}") for v in ("v1", "v2")}
    results = {}
    try:
        for version, url in urls.items():
            users = _prepare(url, version)
            print(f"{version}: {urlsplit(url).path[1:]} at {', '.join(users['revisions'])}")
            results[version] = measure(url, users)
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
    header = f"{'':28}{'v1':>9}{'v2':>9}{'plain':>9}{'v1-plain':>10}{'v2-plain':>10}"
    print(header)
    labels = {"single": f"{SINGLES} single-deal INSERTs", "bulk": f"1 INSERT of {BULK:,} deals"}
    for shape, label in labels.items():
        v1, v2 = results["v1"][(shape, "pgbell")], results["v2"][(shape, "pgbell")]
        plain = statistics.mean([results["v1"][(shape, "plain")], results["v2"][(shape, "plain")]])
        print(f"{label:28}{v1:9.1f}{v2:9.1f}{plain:9.1f}{v1 - plain:10.1f}{v2 - plain:10.1f}")


if __name__ == "__main__":
    main()
