"""Which migrations this pgbell needs, and whether a database has them.

Migrations live on two alembic branches: "pgbell" (pgbell's own schema,
always installed) and "demo" (the demo domain, `pgbell migrate --demo`),
whose revision ids start with `demo_`. `pgbell serve` refuses a database
whose pgbell branch is older than the code; a database migrated by a newer
pgbell (an unknown revision) is served with a warning, so that a rolling
deploy may migrate first and restart the servers after.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

from pgbell.resources import sql_dir

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

VERSION_SCHEMA = "pgbell"
VERSION_TABLE = "alembic_version"
BRANCHES = ("pgbell", "demo")


class SchemaError(RuntimeError):
    """The database cannot be served by this pgbell; the message says what to run."""


def branch_of(revision: str) -> str:
    return "demo" if revision.startswith("demo_") else "pgbell"


def alembic_config() -> Config:
    # alembic (and SQLAlchemy under it) is imported only when needed: the
    # commands that never touch migrations start a third of a second sooner
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(sql_dir() / "migrations"))
    return cfg


@cache
def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def heads(script: ScriptDirectory | None = None) -> dict[str, str]:
    """The head revision of each branch in this pgbell's migrations."""
    script = script or _script()
    return {b: script.get_revisions(f"{b}@head")[0].revision for b in BRANCHES}


def _known(revision: str, script: ScriptDirectory) -> bool:
    from alembic.util import CommandError

    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def _as_tuple(value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def applied(current: list[str], script: ScriptDirectory | None = None) -> set[str]:
    """Every revision that `current` (the rows of the version table) implies.
    Alembic records only heads: demo_0001, which depends on 0001, stands for
    both."""
    script = script or _script()
    seen: set[str] = set()
    stack = [r for r in current if _known(r, script)]
    while stack:
        rev = script.get_revision(stack.pop())
        if rev.revision in seen:
            continue
        seen.add(rev.revision)
        parents = _as_tuple(rev.down_revision) + _as_tuple(rev.dependencies)
        stack.extend(script.get_revision(p).revision for p in parents)
    return seen


@dataclass(frozen=True)
class Verdict:
    demo: bool  # the demo domain is installed
    warnings: list[str] = field(default_factory=list)


def check(current: list[str] | None, script: ScriptDirectory | None = None) -> Verdict:
    """Judge the revisions found in pgbell.alembic_version (None: no table)
    against `script` (default: this pgbell's migrations). Raises SchemaError
    when the database must be migrated first."""
    script = script or _script()
    current = current or []
    done = applied(current, script)
    newer = [r for r in current if not _known(r, script)]
    wanted = heads(script)
    warnings = [
        f"the database is at {r}, a revision this pgbell does not know: a newer pgbell migrated it"
        for r in newer
    ]
    installed = {branch_of(r) for r in done | set(newer)}
    if "pgbell" not in installed:
        raise SchemaError(
            "the database has no pgbell schema: run `pgbell migrate` first"
            " (`pgbell migrate --demo` for the demo)"
        )
    for branch in sorted(installed):
        behind = wanted[branch] not in done and not any(branch_of(r) == branch for r in newer)
        if behind:
            at = sorted(r for r in done if branch_of(r) == branch)[-1]
            raise SchemaError(
                f"the database's {branch} schema is at {at}, older than this pgbell"
                f" ({wanted[branch]}): run `pgbell migrate` first"
            )
    return Verdict(demo="demo" in installed, warnings=warnings)
