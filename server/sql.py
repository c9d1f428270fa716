"""Loads queries.sql: each query sits under a `-- name: NAME` header.

Every statement pgbell runs is there, in PostgreSQL's native `$1`
placeholders: asyncpg takes them as they are, and psycopg through
`psycopg.RawCursor` (the commands of pgbell.ops).
"""

from __future__ import annotations

import re
from importlib.resources import files

_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def parse(text: str) -> dict[str, str]:
    parts = _HEADER.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


class _Queries:
    def __init__(self, queries: dict[str, str]) -> None:
        self._queries = queries

    def __getattr__(self, name: str) -> str:
        try:
            return self._queries[name]
        except KeyError:
            raise AttributeError(f"no query named {name!r} in queries.sql") from None


Q = _Queries(parse(files("pgbell").joinpath("queries.sql").read_text(encoding="utf-8")))
