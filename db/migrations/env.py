"""Alembic environment for pgbell: plain SQL migrations run through psycopg.

The database comes from the `sqlalchemy.url` option that pgbell.ops.migrate sets,
or from DATABASE_URL when alembic is run by hand (`alembic upgrade head`).
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

from pgbell.ops.migrate import sqlalchemy_url

config = context.config


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url") or sqlalchemy_url(os.environ["DATABASE_URL"])
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transactional_ddl=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("pgbell migrations run online only: set DATABASE_URL and run `pgbell migrate`")
run_migrations_online()
