"""Schema migrations: alembic, driven through psycopg, with plain SQL files.

`pgbell migrate` calls upgrade(); the migrations (db/migrations/versions/*.py) call run_sql
and run_sql_file, which hand the SQL to psycopg as it is (multi-statement,
dollar quoting and % signs included).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from alembic import command, op
from alembic.config import Config

from pgbell.resources import sql_dir

DB_DIR = sql_dir()
MIGRATIONS_DIR = DB_DIR / "migrations"
TRIGGERS_DIR = DB_DIR / "triggers"


def sqlalchemy_url(database_url: str) -> str:
    """postgresql://... -> postgresql+psycopg://... (SQLAlchemy's psycopg 3 driver)."""
    parts = urlsplit(database_url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError("DATABASE_URL must start with postgresql://")
    return urlunsplit(("postgresql+psycopg",) + tuple(parts[1:]))


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would eat a % in a password
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def run_sql(sql: str) -> None:
    """Run SQL text inside the migration's transaction, bypassing SQLAlchemy's
    parameter parsing (no params: psycopg sends it as one simple query)."""
    raw = op.get_bind().connection.driver_connection
    raw.execute(sql)


def run_sql_file(path: Path) -> None:
    run_sql(path.read_text(encoding="utf-8"))
