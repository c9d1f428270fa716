"""Schema migrations: alembic, driven through psycopg, with plain SQL files.

`pgbell migrate` calls upgrade(); the migrations (db/migrations/versions/)
call run_sql and run_sql_file, which hand the SQL to psycopg as it is
(multi-statement, dollar quoting and % signs included).

Around alembic, upgrade() creates the NOLOGIN roles pgbell_writer and
pgbell_server when its login may create roles, and grants them their
privileges after every run (a DBA may create the roles later: the next
`pgbell migrate` grants them).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from alembic import command, op
from alembic.config import Config

from pgbell.resources import sql_dir
from pgbell.schema import VERSION_SCHEMA, VERSION_TABLE, alembic_config, applied, branch_of
from pgbell.sql import Q

__all__ = ["VERSION_SCHEMA", "VERSION_TABLE"]

DB_DIR = sql_dir()
TRIGGERS_DIR = DB_DIR / "triggers"
ROLES = ("pgbell_writer", "pgbell_server")
# The grant functions of the latest migrations, per branch: run after every
# upgrade. A migration that adds objects adds a grant_roles_vN and names it here.
GRANTS = {"pgbell": Q.grant_roles, "demo": Q.demo_grant_roles}


def sqlalchemy_url(database_url: str) -> str:
    """postgresql://... -> postgresql+psycopg://... (SQLAlchemy's psycopg 3 driver)."""
    parts = urlsplit(database_url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError("DATABASE_URL must start with postgresql://")
    return urlunsplit(("postgresql+psycopg",) + tuple(parts[1:]))


def _config(database_url: str) -> Config:
    cfg = alembic_config()
    # ConfigParser interpolation would eat a % in a password
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return cfg


@contextmanager
def _connect(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True, cursor_factory=psycopg.RawCursor) as conn:
        yield conn


def current_revisions(database_url: str) -> list[str] | None:
    """The revisions in pgbell.alembic_version; None when there is no such table."""
    with _connect(database_url) as conn:
        if conn.execute(Q.version_table_exists).fetchone()[0] is None:
            return None
        return [r[0] for r in conn.execute(Q.schema_versions).fetchall()]


@dataclass
class Outcome:
    demo: bool
    created_roles: list[str] = field(default_factory=list)
    missing_roles: list[str] = field(default_factory=list)


def _create_roles(conn: psycopg.Connection) -> tuple[list[str], list[str]]:
    """Creates the missing roles if this login may; returns (created, missing)."""
    missing = [r for r in ROLES if conn.execute(Q.role_exists, (r,)).fetchone()[0] is None]
    if not missing or not conn.execute(Q.may_create_roles).fetchone()[0]:
        return [], missing
    created = []
    for role in missing:
        try:
            # Roles belong to the whole cluster: another database's migrate
            # may create the same one at the same moment.
            conn.execute(f"CREATE ROLE {role} NOLOGIN")
            conn.execute(f"COMMENT ON ROLE {role} IS '{_ROLE_COMMENTS[role]}'")
            created.append(role)
        except psycopg.errors.DuplicateObject:
            pass
    return created, []


_ROLE_COMMENTS = {
    "pgbell_writer": "pgbell: may call pgbell.notify() and nothing else in schema pgbell",
    "pgbell_server": "pgbell: what pgbell serve needs",
}


def upgrade(database_url: str, demo: bool = False) -> Outcome:
    """Migrate pgbell's schema to its head, and the demo's too when asked or
    already installed; then grant the roles. Safe to run again."""
    with _connect(database_url) as conn:
        created, missing = _create_roles(conn)
    cfg = _config(database_url)
    command.upgrade(cfg, "pgbell@head")
    installed = {branch_of(r) for r in applied(current_revisions(database_url) or [])}
    if demo or "demo" in installed:
        command.upgrade(cfg, "demo@head")
        installed.add("demo")
    with _connect(database_url) as conn:
        for branch in sorted(installed):
            missing = sorted(set(missing) | set(conn.execute(GRANTS[branch]).fetchone()[0]))
    return Outcome(demo="demo" in installed, created_roles=created, missing_roles=missing)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(_config(database_url), revision)


def roles_sql(missing: list[str]) -> str:
    """What a DBA runs when pgbell's login may not create roles."""
    return "\n".join(f"CREATE ROLE {role} NOLOGIN;" for role in missing)


def run_sql(sql: str) -> None:
    """Run SQL text inside the migration's transaction, bypassing SQLAlchemy's
    parameter parsing (no params: psycopg sends it as one simple query)."""
    raw = op.get_bind().connection.driver_connection
    raw.execute(sql)


def run_sql_file(path: Path) -> None:
    run_sql(path.read_text(encoding="utf-8"))
