"""The database side of the writers' benchmark (bench/writers_cost.py): the
pgbench scripts, the plain look-alike tables, the wake-up triggers to turn
off, and what a run committed.

The plain set-up writes the same rows as pgbell's deal trigger, with plain
SQL into look-alike tables: same columns, defaults, constraints and indexes
(`LIKE ... INCLUDING ALL`, plus the foreign keys LIKE leaves out), the
title, body and action URL rendered by format() as the demo's template
renders them. No pgbell function, no trigger, no NOTIFY.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql

PLAIN = "writers_plain"  # the look-alike tables' schema

# one deal per transaction, the owner at random among the non-managers
PGBELL_SCRIPT = """\
\\set owner random(:lo, :hi)
INSERT INTO deals (title, amount, owner_id) VALUES ('pgbench deal', 12000, :owner);
"""

# the same deal and the same rows, one statement (one transaction), as the
# deal's INSERT is one statement with pgbell's trigger
PLAIN_SCRIPT = f"""\
\\set owner random(:lo, :hi)
WITH deal AS (INSERT INTO {PLAIN}.deals (title, amount, owner_id) VALUES ('pgbench deal', 12000, :owner) RETURNING id, title, amount, owner_id)
INSERT INTO {PLAIN}.notifications (user_id, kind, title, body, priority, action_url, data)
SELECT r.id, 'deal_created', format('New deal: %s', deal.title),
       format('%s, %s', deal.title, to_char(deal.amount, 'FM999,999,999,999,990.00')),
       'normal', format('/deals/%s', deal.id),
       jsonb_build_object('deal_id', deal.id, 'title', deal.title, 'amount', deal.amount, 'owner_id', deal.owner_id)
  FROM deal, LATERAL (SELECT deal.owner_id::text
                      UNION SELECT u.id::text FROM pgbell.users u WHERE 'manager' = ANY (u.roles)) AS r (id)
 ORDER BY r.id;
"""  # noqa: E501

LOOKALIKE = [
    f"CREATE SCHEMA {PLAIN}",
    f"CREATE TABLE {PLAIN}.deals (LIKE public.deals INCLUDING ALL)",
    f"CREATE SEQUENCE {PLAIN}.deals_id_seq OWNED BY {PLAIN}.deals.id",
    f"ALTER TABLE {PLAIN}.deals ALTER id SET DEFAULT nextval('{PLAIN}.deals_id_seq'),"
    "  ADD FOREIGN KEY (owner_id) REFERENCES pgbell.users (id),"
    "  ADD FOREIGN KEY (created_by) REFERENCES pgbell.users (id)",
    f"CREATE TABLE {PLAIN}.notifications (LIKE pgbell.notifications INCLUDING ALL)",
    f"CREATE SEQUENCE {PLAIN}.notifications_id_seq OWNED BY {PLAIN}.notifications.id",
    f"ALTER TABLE {PLAIN}.notifications"
    f"  ALTER id SET DEFAULT nextval('{PLAIN}.notifications_id_seq')",
]

# what a fresh run starts from: no deals, no stored notifications (the
# server counts a recipient's unread rows for every frame it sends)
CLEAR = (
    "TRUNCATE public.deals, public.payments, pgbell.notifications, pgbell.state_changes,"
    f" {PLAIN}.deals, {PLAIN}.notifications"
)

# the columns a recipient sees; deal ids differ between the two tables
SAME_ROWS = """
SELECT user_id, kind, title, body, priority::text, regexp_replace(action_url, '\\d+$', 'N'),
       data - 'deal_id'
  FROM {} WHERE id > %s ORDER BY user_id
"""


def write_scripts(folder: Path) -> dict[str, Path]:
    """The pgbench scripts, as files pgbench reads."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"pgbell": folder / "pgbell.sql", "plain": folder / "plain.sql"}
    paths["pgbell"].write_text(PGBELL_SCRIPT)
    paths["plain"].write_text(PLAIN_SCRIPT)
    return paths


def create_lookalike(dsn: str) -> None:
    """The plain tables, then a check that they get the rows pgbell writes."""
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        for statement in LOOKALIKE:
            conn.execute(statement)
        conn.commit()
        lo = owner_range(conn)[0]
        # pgbell's trigger and the plain script, side by side, rolled back
        before = [conn.execute(f"SELECT coalesce(max(id), 0) FROM {t}").fetchone()[0]
                  for t in ("pgbell.notifications", f"{PLAIN}.notifications")]  # fmt: skip
        conn.execute(PGBELL_SCRIPT.split("\n", 1)[1].replace(":owner", str(lo)))
        conn.execute(PLAIN_SCRIPT.split("\n", 1)[1].replace(":owner", str(lo)))
        ours = conn.execute(SAME_ROWS.format("pgbell.notifications"), (before[0],)).fetchall()
        look = conn.execute(SAME_ROWS.format(f"{PLAIN}.notifications"), (before[1],)).fetchall()
        conn.rollback()
    if not ours or ours != look:
        raise RuntimeError(f"the plain script writes other rows than pgbell:\n{ours}\n{look}")


def owner_range(conn: psycopg.Connection) -> tuple[int, int]:
    row = conn.execute(
        "SELECT min(id), max(id) FROM pgbell.users WHERE NOT 'manager' = ANY(roles)"
    ).fetchone()
    if row is None or row[0] is None:
        raise RuntimeError("no non-manager users to own the pgbench deals")
    return int(row[0]), int(row[1])


def wake_triggers(conn: psycopg.Connection) -> list[str]:
    """The user triggers on pgbell.notifications whose function calls
    pg_notify, itself or through another function of pgbell's that does."""
    rows = conn.execute(
        """
        WITH notifying AS (
            SELECT p.proname FROM pg_proc p
             WHERE p.pronamespace = 'pgbell'::regnamespace AND p.prosrc ~* 'pg_notify')
        SELECT t.tgname FROM pg_trigger t JOIN pg_proc f ON f.oid = t.tgfoid
         WHERE t.tgrelid = 'pgbell.notifications'::regclass AND NOT t.tgisinternal
           AND (f.prosrc ~* 'pg_notify'
                OR EXISTS (SELECT FROM notifying n WHERE f.prosrc ~* ('\\m' || n.proname || '\\M')))
         ORDER BY t.tgname
        """
    ).fetchall()
    return [r[0] for r in rows]


def set_wake_triggers(dsn: str, enabled: bool) -> list[str]:
    """Enable or disable every wake-up trigger; returns their names."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        names = wake_triggers(conn)
        if not names:
            raise RuntimeError("no trigger on pgbell.notifications calls pg_notify")
        verb = "ENABLE" if enabled else "DISABLE"
        for name in names:
            conn.execute(
                sql.SQL("ALTER TABLE pgbell.notifications {} TRIGGER {}").format(
                    sql.SQL(verb), sql.Identifier(name)
                )
            )
    return names


def set_always_notify(dsn: str, enabled: bool) -> None:
    """Make every notifying statement send pg_notify, as servers that
    never stay awake would have writers do: pgbell's wake-up triggers off,
    and one of the benchmark's own that always notifies (or the reverse)."""
    set_wake_triggers(dsn, not enabled)
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        if enabled:
            conn.execute(
                f"""
                CREATE FUNCTION {PLAIN}.always_notify() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN PERFORM pg_notify('pgbell_v1', ''); RETURN NULL; END $$;
                CREATE TRIGGER bench_always_notify AFTER INSERT ON pgbell.notifications
                    FOR EACH STATEMENT EXECUTE FUNCTION {PLAIN}.always_notify();
                """
            )
        else:
            conn.execute(
                f"""
                DROP TRIGGER IF EXISTS bench_always_notify ON pgbell.notifications;
                DROP FUNCTION IF EXISTS {PLAIN}.always_notify();
                """
            )


def clear(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(CLEAR)
        # every run starts from the same place, not in the middle of a checkpoint
        conn.execute("CHECKPOINT")


def committed(dsn: str, table: str) -> dict[str, int]:
    """Rows per recipient in `table` (cleared before the run: all are the run's)."""
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        rows = conn.execute(
            sql.SQL("SELECT user_id, count(*) FROM {} GROUP BY user_id").format(sql.SQL(table))
        ).fetchall()
    return {u: int(n) for u, n in rows}


async def server_backends(conn: psycopg.AsyncConnection) -> list[int]:
    """pids of the pgbell server's own sessions (its listener and its pool)."""
    cur = await conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name LIKE 'pgbell%' AND pid <> pg_backend_pid()"
    )
    return [r[0] for r in await cur.fetchall()]
