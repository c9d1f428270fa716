"""The `pgbell` command: migrate, serve, user add, rules, prune, run, psql.

Every command reads DATABASE_URL (a libpq URL); `pgbell run` starts the
embedded PostgreSQL when it is not set.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
from pathlib import Path

import psycopg
from psycopg import sql

from pgbell import __version__
from pgbell.config import ConfigError, Settings

# `make run` keeps its embedded database here, relative to where it is run.
DATA_DIR = Path(".data")
DEMO_USERS = [("alice", ["member"]), ("bob", ["member"]), ("carol", ["manager"])]
DEMO_PASSWORD = "pgbell-demo"


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        raise SystemExit("pgbell: DATABASE_URL is not set (postgresql://user@host:port/db)")
    return url


def cmd_migrate(args: argparse.Namespace) -> int:
    from pgbell.ops import migrate

    migrate.upgrade(_database_url())
    print("pgbell: database is at the latest migration")
    return 0


def add_user(url: str, name: str, password: str, roles: list[str]) -> int:
    from pgbell.passwords import hash_password

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "INSERT INTO pgbell.users (username, password_hash, roles)"
            " VALUES (%s, %s, %s) RETURNING id",
            (name, hash_password(password), roles),
        ).fetchone()
    return row[0]


def cmd_user_add(args: argparse.Namespace) -> int:
    if not 1 <= len(args.name) <= 150:
        raise SystemExit("pgbell: NAME must be 1 to 150 characters")
    try:
        user_id = add_user(_database_url(), args.name, args.password, args.role or [])
    except psycopg.errors.UniqueViolation:
        raise SystemExit(f"pgbell: a user named {args.name!r} already exists") from None
    print(user_id)
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    with psycopg.connect(_database_url(), autocommit=True) as conn:
        if args.action in ("disable", "enable"):
            if not args.name:
                raise SystemExit(f"pgbell: usage: pgbell rules {args.action} NAME")
            row = conn.execute(
                "SELECT table_name FROM pgbell.rules WHERE name = %s", (args.name,)
            ).fetchone()
            if row is None:
                raise SystemExit(
                    f"pgbell: no notification trigger named {args.name!r} (see `pgbell rules`)"
                )
            rel = conn.execute(
                "SELECT tgrelid::regclass::text FROM pg_trigger WHERE tgname = %s", (args.name,)
            ).fetchone()[0]
            verb = sql.SQL("DISABLE" if args.action == "disable" else "ENABLE")
            conn.execute(
                sql.SQL("ALTER TABLE {} {} TRIGGER {}").format(
                    sql.SQL(rel), verb, sql.Identifier(args.name)
                )
            )
            print(f"{args.name} on {row[0]}: {args.action}d")
            return 0
        rows = conn.execute(
            "SELECT name, table_name, timing || ' ' || event || ' / ' || level, function,"
            " enabled, coalesce(comment, '') FROM pgbell.rules ORDER BY table_name, name"
        ).fetchall()
    header = ("NAME", "TABLE", "EVENT", "FUNCTION", "ENABLED", "COMMENT")
    table = [header] + [(r[0], r[1], r[2], r[3], "yes" if r[4] else "NO", r[5]) for r in rows]
    widths = [max(len(str(r[i])) for r in table) for i in range(5)]
    for r in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5])
    return 0


def serve(settings: Settings) -> None:
    import logging

    from aiohttp import web

    from pgbell.http import logs
    from pgbell.http.app import create_app

    logs.setup(settings.log_level, settings.log_format)
    log = logging.getLogger("pgbell")
    if settings.jwt_secret_generated:
        log.warning(
            "PGBELL_JWT_SECRET is not set: using a random secret; tokens end with this process"
        )
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log_class=logs.AccessLogger,
        print=lambda *a: None,
        shutdown_timeout=10.0,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = Settings.from_env(**overrides)
    except ConfigError as e:
        raise SystemExit(f"pgbell: {e}") from None
    print(f"pgbell: serving on http://{settings.host}:{settings.port}", flush=True)
    serve(settings)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """make run: the whole system on the embedded default."""
    from pgbell.ops import embedded, migrate

    data = Path(args.data_dir)
    env = dict(os.environ)
    if not env.get("DATABASE_URL"):
        print(f"pgbell: starting the embedded PostgreSQL under {data}/pg ...", flush=True)
        env["DATABASE_URL"] = embedded.start(data)
    if not env.get("PGBELL_JWT_SECRET"):
        # one secret per data directory, so a restart keeps everyone logged in
        secret_file = data / "jwt_secret"
        data.mkdir(parents=True, exist_ok=True)
        if not secret_file.exists():
            secret_file.write_text(secrets.token_urlsafe(32))
            secret_file.chmod(0o600)
        env["PGBELL_JWT_SECRET"] = secret_file.read_text().strip()
    url = env["DATABASE_URL"]
    migrate.upgrade(url)
    print(f"pgbell: database {url}  (`pgbell psql` opens it)")
    print(f"pgbell: demo users (password for each: {DEMO_PASSWORD})")
    for name, roles in DEMO_USERS:
        try:
            add_user(url, name, DEMO_PASSWORD, roles)
        except psycopg.errors.UniqueViolation:
            pass
        print(f"  {name:<6} roles: {', '.join(roles)}")
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = Settings.from_env(env, **overrides)
    except ConfigError as e:
        raise SystemExit(f"pgbell: {e}") from None
    print(f"pgbell: open http://{settings.host}:{settings.port} (Ctrl-C stops)", flush=True)
    serve(settings)
    return 0


PRUNE_SQL = """
WITH doomed AS (
    SELECT id FROM pgbell.notifications
     WHERE created_at < now() - make_interval(days => %(days)s)
       AND (%(include_unread)s OR read_at IS NOT NULL OR archived_at IS NOT NULL)
     ORDER BY id
     LIMIT %(batch)s
       FOR UPDATE SKIP LOCKED
)
DELETE FROM pgbell.notifications n USING doomed WHERE n.id = doomed.id
"""


def cmd_prune(args: argparse.Namespace) -> int:
    """Retention: delete old notifications in short batches, so the job
    never holds many row locks or a long transaction on a busy table."""
    if args.older_than < 1:
        raise SystemExit("pgbell: --older-than must be at least 1 day")
    if not 1 <= args.batch <= 100_000:
        raise SystemExit("pgbell: --batch must be between 1 and 100000")
    params = {"days": args.older_than, "include_unread": args.include_unread, "batch": args.batch}
    total = 0
    with psycopg.connect(_database_url(), autocommit=True) as conn:
        while True:
            deleted = conn.execute(PRUNE_SQL, params).rowcount
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pgbell", description="Real-time notifications with PostgreSQL as the bus."
    )
    p.add_argument("--version", action="version", version=f"pgbell {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    m = sub.add_parser("migrate", help="apply every migration to $DATABASE_URL (safe to run twice)")
    m.set_defaults(func=cmd_migrate)

    s = sub.add_parser("serve", help="serve REST, /ws and the client demo")
    s.add_argument("--host", help="address to bind (default $PGBELL_HOST or 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default $PGBELL_PORT or 8080)")
    s.set_defaults(func=cmd_serve)

    u = sub.add_parser("user", help="manage users")
    usub = u.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    ua = usub.add_parser("add", help="create a user and print its id")
    ua.add_argument("name")
    ua.add_argument("--password", required=True)
    ua.add_argument("--role", action="append", help="a role, e.g. manager (repeatable)")
    ua.set_defaults(func=cmd_user_add)

    r = sub.add_parser("rules", help="list, disable or enable notification triggers")
    r.add_argument("action", nargs="?", choices=("list", "disable", "enable"), default="list")
    r.add_argument("name", nargs="?", help="trigger name, as listed")
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

    run = sub.add_parser("run", help="start everything on the embedded default (make run)")
    run.add_argument("--data-dir", default=str(DATA_DIR), help="embedded data (default ./.data/)")
    run.add_argument("--host")
    run.add_argument("--port", type=int)
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
