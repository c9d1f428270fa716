"""The settings of a pool behind PgBouncer: where LISTEN goes, asyncpg's
statement cache, and the drain before shutdown. A transaction-mode pool
without a LISTEN URL of its own is refused at start, naming the variable."""

from __future__ import annotations

import pytest

from pgbell.config import ConfigError, Settings
from tests.support import JWT_SECRET

POOL = "postgresql://bell@127.0.0.1:6432/app"
DIRECT = "postgresql://bell@db.internal:5432/app"


def settings(**env: str) -> Settings:
    return Settings.from_env({"DATABASE_URL": POOL, "PGBELL_JWT_SECRET": JWT_SECRET, **env})


def test_by_default_one_url_serves_both_with_asyncpgs_cache():
    s = settings()
    assert (s.listen_database_url, s.db_pool_mode, s.db_statement_cache) == (POOL, "direct", 100)
    assert s.shutdown_drain == 0
    assert Settings(database_url=POOL).listen_database_url == POOL


def test_transaction_pooling_turns_the_statement_cache_off():
    s = settings(PGBELL_DB_POOL_MODE="transaction", PGBELL_LISTEN_DATABASE_URL=DIRECT)
    assert (s.listen_database_url, s.db_statement_cache) == (DIRECT, 0)
    # PgBouncer 1.21+ with max_prepared_statements: the operator turns it back on
    kept = settings(
        PGBELL_DB_POOL_MODE="transaction",
        PGBELL_LISTEN_DATABASE_URL=DIRECT,
        PGBELL_DB_STATEMENT_CACHE="100",
    )
    assert kept.db_statement_cache == 100
    assert settings(PGBELL_DB_POOL_MODE="session").db_statement_cache == 100


@pytest.mark.parametrize("listen", ["", POOL])
def test_transaction_pooling_without_a_listen_url_of_its_own_is_refused(listen):
    with pytest.raises(ConfigError, match="set PGBELL_LISTEN_DATABASE_URL"):
        settings(PGBELL_DB_POOL_MODE="transaction", PGBELL_LISTEN_DATABASE_URL=listen)


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"PGBELL_DB_POOL_MODE": "statement"}, "multi-statement transactions"),
        ({"PGBELL_DB_POOL_MODE": "pgbouncer"}, "PGBELL_DB_POOL_MODE must be one of"),
        ({"PGBELL_DB_STATEMENT_CACHE": "-1"}, "PGBELL_DB_STATEMENT_CACHE must be between"),
        ({"PGBELL_SHUTDOWN_DRAIN": "soon"}, "PGBELL_SHUTDOWN_DRAIN must be a number"),
    ],
)
def test_bad_pool_settings_name_the_variable(env, words):
    with pytest.raises(ConfigError, match=words):
        settings(**env)
