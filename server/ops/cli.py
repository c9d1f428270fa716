"""The `pgbell` command: migrate, check, serve, user, rules, prune, run, psql.

Every command reads DATABASE_URL (a libpq URL); `pgbell run` starts the
embedded PostgreSQL when it is not set. The commands other than serve are
for pgbell's owner or a DBA; their SQL is in queries.sql with the server's.
"""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import subprocess
import sys
from pathlib import Path

import psycopg
from psycopg import sql

from pgbell import __version__
from pgbell.config import MAX_WORKERS, ConfigError, Settings
from pgbell.sql import Q

# `make run` keeps its embedded database here, relative to where it is run.
DATA_DIR = Path(".data")
DEMO_USERS = [("alice", ["member"]), ("bob", ["member"]), ("carol", ["manager"])]
DEMO_PASSWORD = "pgbell-demo"
MAX_PASSWORD = 1024  # what /auth/login accepts


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        raise SystemExit("pgbell: DATABASE_URL is not set (postgresql://user@host:port/db)")
    return url


def _connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, cursor_factory=psycopg.RawCursor)


def migrate(url: str, demo: bool) -> None:
    """`pgbell migrate`: the schema, the roles, and what a DBA must do if
    this login may not create roles."""
    from pgbell.ops import migrate as migrations

    outcome = migrations.upgrade(url, demo=demo)
    for role in outcome.created_roles:
        print(f"pgbell: created the role {role} (NOLOGIN)")
    what = "pgbell's schema and the demo domain are" if outcome.demo else "pgbell's schema is"
    print(f"pgbell: {what} at the latest migration")
    if outcome.missing_roles:
        print(
            "pgbell: this login may not create roles, so pgbell_writer and pgbell_server"
            " have no grants yet. Ask a DBA to run:\n\n"
            + migrations.roles_sql(outcome.missing_roles)
            + "\n\nthen run `pgbell migrate` again: it grants them what they need.",
            file=sys.stderr,
        )
    elif outcome.created_roles:
        print(
            "pgbell: grant them to your logins, e.g. GRANT pgbell_server TO <server login>;"
            " GRANT pgbell_writer TO <application login>;"
        )


def cmd_migrate(args: argparse.Namespace) -> int:
    migrate(_database_url(), args.demo)
    return 0


def _read_password(prompt: str) -> str:
    """From the terminal (asked twice), or the first line of standard input:
    never from the command line, where ps and shell history would keep it."""
    if sys.stdin.isatty():
        password = getpass.getpass(prompt)
        if getpass.getpass("Again: ") != password:
            raise SystemExit("pgbell: the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not 1 <= len(password) <= MAX_PASSWORD:
        raise SystemExit(f"pgbell: a password is 1 to {MAX_PASSWORD} characters")
    return password


def add_user(url: str, name: str, password: str, roles: list[str]) -> int:
    from pgbell.passwords import hash_password

    with _connect(url) as conn:
        return conn.execute(Q.add_user, (name, hash_password(password), roles)).fetchone()[0]


def _check_name(name: str) -> None:
    if not 1 <= len(name) <= 150:
        raise SystemExit("pgbell: NAME must be 1 to 150 characters")


def cmd_user_add(args: argparse.Namespace) -> int:
    _check_name(args.name)
    password = args.password if args.password is not None else _read_password("Password: ")
    try:
        user_id = add_user(_database_url(), args.name, password, args.role or [])
    except psycopg.errors.UniqueViolation:
        raise SystemExit(f"pgbell: a user named {args.name!r} already exists") from None
    print(user_id)
    return 0


def cmd_user_password(args: argparse.Namespace) -> int:
    from pgbell.passwords import hash_password

    _check_name(args.name)
    password = _read_password("New password: ")
    with _connect(_database_url()) as conn:
        row = conn.execute(Q.set_password, (args.name, hash_password(password))).fetchone()
    if row is None:
        raise SystemExit(f"pgbell: no user named {args.name!r}")
    print(f"pgbell: new password for {args.name}; every token issued before is refused")
    return 0


def cmd_user_delete(args: argparse.Namespace) -> int:
    _check_name(args.name)
    try:
        with _connect(_database_url()) as conn:
            row = conn.execute(Q.delete_user, (args.name,)).fetchone()
    except psycopg.errors.ForeignKeyViolation as e:
        table = e.diag.table_name or "another table"
        raise SystemExit(
            f"pgbell: {args.name} is still referenced from {table}"
            f" ({e.diag.constraint_name}): delete or reassign those rows first"
        ) from None
    if row is None:
        raise SystemExit(f"pgbell: no user named {args.name!r}")
    print(
        f"pgbell: deleted {args.name} (id {row[0]}) and its notifications; its tokens are refused"
    )
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    with _connect(_database_url()) as conn:
        if args.action in ("disable", "enable"):
            return _toggle_rule(conn, args)
        rows = conn.execute(Q.list_rules).fetchall()
    header = ("NAME", "TABLE", "EVENT", "FUNCTION", "ENABLED", "COMMENT")
    table = [header] + [(r[0], r[1], r[2], r[3], "yes" if r[4] else "NO", r[5]) for r in rows]
    widths = [max(len(str(r[i])) for r in table) for i in range(5)]
    for r in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5])
    return 0


def _toggle_rule(conn: psycopg.Connection, args: argparse.Namespace) -> int:
    if not args.name:
        raise SystemExit(f"pgbell: usage: pgbell rules {args.action} NAME [--table TABLE]")
    tables = [r[0] for r in conn.execute(Q.rule_relation, (args.name,)).fetchall()]
    if args.table is not None:
        tables = [t for t in tables if args.table in (t, t.rpartition(".")[2])]
    if not tables:
        raise SystemExit(
            f"pgbell: no notification trigger named {args.name!r}"
            + (f" on {args.table}" if args.table else "")
            + " (see `pgbell rules`)"
        )
    if len(tables) > 1:
        raise SystemExit(f"pgbell: {args.name!r} is on {', '.join(tables)}: say which with --table")
    verb = sql.SQL("DISABLE" if args.action == "disable" else "ENABLE")
    # tgrelid::regclass::text is already quoted where it must be
    conn.execute(
        sql.SQL("ALTER TABLE {} {} TRIGGER {}").format(
            sql.SQL(tables[0]), verb, sql.Identifier(args.name)
        )
    )
    print(f"{args.name} on {tables[0]}: {args.action}d")
    return 0


def _settings(env: dict[str, str] | None, args: argparse.Namespace) -> Settings:
    overrides = {
        k: v
        for k, v in (("host", args.host), ("port", args.port), ("workers", args.workers))
        if v is not None
    }
    try:
        return Settings.from_env(env, **overrides)
    except ConfigError as e:
        raise SystemExit(f"pgbell: {e}") from None


def cmd_check(args: argparse.Namespace) -> int:
    from pgbell.ops import check

    return check.main()


def _serve(settings: Settings, env: dict[str, str]) -> int:
    """One process with --workers 1, else a supervisor and its workers."""
    if settings.workers > 1:
        from pgbell.ops import workers

        return workers.supervise(settings, env)
    from pgbell.ops import serving

    print(f"pgbell: serving on http://{settings.host}:{settings.port}", flush=True)
    serving.serve(settings)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(None, args)
    if args.worker is not None:
        # a worker process that `pgbell serve --workers N` started
        from pgbell.ops import workers

        index, count = args.worker
        return workers.work(settings, index, count, args.ready_fd)
    return _serve(settings, dict(os.environ))


def cmd_run(args: argparse.Namespace) -> int:
    """make run: the whole system, with the demo, on the embedded default."""
    from pgbell.ops import embedded

    data = Path(args.data_dir)
    env = dict(os.environ)
    if not env.get("DATABASE_URL"):
        print(f"pgbell: starting the embedded PostgreSQL under {data}/pg ...", flush=True)
        env["DATABASE_URL"] = embedded.start(data)
    if not env.get("PGBELL_JWT_SECRET"):
        # A development secret, one per data directory so that a restart
        # keeps everyone logged in. Only `pgbell run` makes one up.
        secret_file = data / "jwt_secret"
        data.mkdir(parents=True, exist_ok=True)
        if not secret_file.exists():
            secret_file.write_text(secrets.token_urlsafe(32))
            secret_file.chmod(0o600)
        env["PGBELL_JWT_SECRET"] = secret_file.read_text().strip()
    url = env["DATABASE_URL"]
    migrate(url, demo=True)
    print(f"pgbell: database {url}  (`pgbell psql` opens it)")
    print(f"pgbell: demo users (password for each: {DEMO_PASSWORD})")
    for name, roles in DEMO_USERS:
        try:
            add_user(url, name, DEMO_PASSWORD, roles)
        except psycopg.errors.UniqueViolation:
            pass
        print(f"  {name:<6} roles: {', '.join(roles)}")
    settings = _settings(env, args)
    print(f"pgbell: open http://{settings.host}:{settings.port} (Ctrl-C stops)", flush=True)
    return _serve(settings, env)


def cmd_prune(args: argparse.Namespace) -> int:
    """Retention: delete old notifications in short batches, so the job
    never holds many row locks or a long transaction on a busy table."""
    if args.older_than < 1:
        raise SystemExit("pgbell: --older-than must be at least 1 day")
    if not 1 <= args.batch <= 100_000:
        raise SystemExit("pgbell: --batch must be between 1 and 100000")
    total = 0
    with _connect(_database_url()) as conn:
        while True:
            params = (args.older_than, args.include_unread, args.batch)
            deleted = conn.execute(Q.prune_notifications, params).rowcount
            total += deleted
            if deleted < args.batch:
                break
    which = "notifications" if args.include_unread else "read or archived notifications"
    print(f"pgbell: deleted {total} {which} older than {args.older_than} days")
    return 0


def run_psql(psql_args: list[str]) -> int:
    """psql on $DATABASE_URL, or on the embedded database of `make run`."""
    from pgbell.ops import embedded

    url = os.environ.get("DATABASE_URL") or embedded.start(DATA_DIR)
    psql = embedded.bin_dir() / "psql"
    return subprocess.run([str(psql), "-X", "-d", url, *psql_args], check=False).returncode


def _workers(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {raw!r}") from None
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"between 1 and {MAX_WORKERS}, got {value}")
    return value


def _worker_of(raw: str) -> tuple[int, int]:
    index, _, count = raw.partition("/")
    return int(index), int(count)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pgbell", description="Real-time notifications with PostgreSQL as the bus."
    )
    p.add_argument("--version", action="version", version=f"pgbell {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    m = sub.add_parser(
        "migrate",
        help="install or update pgbell's schema in $DATABASE_URL (safe to run twice)",
        description="Install or update pgbell's own schema (schema pgbell only), create the"
        " roles pgbell_writer and pgbell_server when this login may, and grant them.",
    )
    m.add_argument(
        "--demo",
        action="store_true",
        help="also install the demo domain (public.deals, public.payments, their triggers)",
    )
    m.set_defaults(func=cmd_migrate)

    c = sub.add_parser(
        "check",
        help="verify the configuration, database, schema, roles and pooling before serving",
        description="Check what `pgbell serve` needs, with its environment: the settings and"
        " key sources, that the database answers, the schema version, the roles, the NOTIFY"
        " queue, and that the LISTEN connection is not behind a transaction-mode pooler."
        " One line per check (ok: or problem:); the exit status is 1 if any problem.",
    )
    c.set_defaults(func=cmd_check)

    s = sub.add_parser("serve", help="serve REST, /ws and the client demo")
    s.add_argument("--host", help="address to bind (default $PGBELL_HOST or 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default $PGBELL_PORT or 8080)")
    s.add_argument(
        "--workers",
        type=_workers,
        metavar="N",
        help="processes on the same port, each with its own LISTEN connection and pool"
        " (default $PGBELL_WORKERS or the number of cores; 1: no supervisor)",
    )
    # how a supervisor starts its workers; not for people
    s.add_argument("--worker", type=_worker_of, help=argparse.SUPPRESS)
    s.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_serve)

    u = sub.add_parser("user", help="manage pgbell's own users (standalone mode)")
    usub = u.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    ua = usub.add_parser(
        "add", help="create a user and print its id; the password is read from standard input"
    )
    ua.add_argument("name")
    ua.add_argument(
        "--password",
        help="the password (visible to ps and kept in shell history: prefer standard input)",
    )
    ua.add_argument("--role", action="append", help="a role, e.g. manager (repeatable)")
    ua.set_defaults(func=cmd_user_add)
    up = usub.add_parser(
        "password",
        help="set a new password, read from standard input; every older token is refused",
    )
    up.add_argument("name")
    up.set_defaults(func=cmd_user_password)
    ud = usub.add_parser(
        "delete", help="delete a user and its notifications; its tokens are refused"
    )
    ud.add_argument("name")
    ud.set_defaults(func=cmd_user_delete)

    r = sub.add_parser("rules", help="list, disable or enable notification triggers")
    r.add_argument("action", nargs="?", choices=("list", "disable", "enable"), default="list")
    r.add_argument("name", nargs="?", help="trigger name, as listed")
    r.add_argument("--table", help="the trigger's table, when two tables have one of that name")
    r.set_defaults(func=cmd_rules)

    pr = sub.add_parser(
        "prune",
        help="delete old read or archived notifications (retention; run it from cron)",
    )
    pr.add_argument(
        "--older-than", type=int, required=True, metavar="DAYS", help="created more than DAYS ago"
    )
    pr.add_argument(
        "--include-unread",
        action="store_true",
        help="delete old unread notifications too (their users are not told)",
    )
    pr.add_argument("--batch", type=int, default=5000, help="rows per transaction (default 5000)")
    pr.set_defaults(func=cmd_prune)

    run = sub.add_parser(
        "run", help="start everything, with the demo, on the embedded default (make run)"
    )
    run.add_argument("--data-dir", default=str(DATA_DIR), help="embedded data (default ./.data/)")
    run.add_argument("--host")
    run.add_argument("--port", type=int)
    run.add_argument(
        "--workers", type=_workers, default=1, metavar="N", help="serving processes (default 1)"
    )
    run.set_defaults(func=cmd_run)

    sub.add_parser(
        "psql",
        help="psql on $DATABASE_URL, or on the embedded database of make run;"
        " the rest of the line goes to psql",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["psql"] and argv[1:2] not in (["-h"], ["--help"]):
        # everything after `psql` is psql's own, options included
        return run_psql(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except psycopg.OperationalError as e:
        print(f"pgbell: cannot reach the database: {e}", file=sys.stderr)
        return 1
