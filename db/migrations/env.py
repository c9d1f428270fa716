"""Alembic environment for pgbell: plain SQL migrations run through psycopg.

The database comes from the `sqlalchemy.url` option that pgbell.ops.migrate
sets, or from DATABASE_URL when alembic is run by hand. pgbell keeps its
version table in its own schema (pgbell.alembic_version), so an application
that uses alembic itself keeps its public.alembic_version to itself.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool, text

from pgbell.ops.migrate import VERSION_SCHEMA, VERSION_TABLE, sqlalchemy_url

config = context.config


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url") or sqlalchemy_url(os.environ["DATABASE_URL"])
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            transactional_ddl=True,
            version_table=VERSION_TABLE,
            version_table_schema=VERSION_SCHEMA,
        )
        with context.begin_transaction():
            # the version table lives in the schema: it must exist first
            connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {VERSION_SCHEMA}"))
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("pgbell migrations run online only: set DATABASE_URL and run `pgbell migrate`")
run_migrations_online()
