"""`pgbell serve` refuses a database whose schema is older than the code and
says to run `pgbell migrate`; a newer one is served with a warning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from pgbell import schema
from pgbell.schema import SchemaError
from tests.support import JWT_SECRET

REVISION = """
revision = {rev!r}
down_revision = {down!r}
branch_labels = {labels!r}
depends_on = {deps!r}


def upgrade():
    pass


def downgrade():
    pass
"""


@pytest.fixture
def later_code(tmp_path: Path) -> ScriptDirectory:
    """Migrations as a later pgbell would ship them: 0001 -> 0002, and the demo
    branch demo_0001 depending on 0001."""
    versions = tmp_path / "versions"
    versions.mkdir()
    for rev, down, labels, deps in (
        ("0001", None, ("pgbell",), None),
        ("0002", "0001", None, None),
        ("demo_0001", None, ("demo",), "0001"),
    ):
        text = REVISION.format(rev=rev, down=down, labels=labels, deps=deps)
        (versions / f"{rev}_x.py").write_text(text)
    cfg = Config()
    cfg.set_main_option("script_location", str(tmp_path))
    return ScriptDirectory.from_config(cfg)


def test_an_older_pgbell_schema_is_refused_with_the_command_to_run(later_code):
    for current in (["0001"], ["demo_0001"]):
        with pytest.raises(SchemaError, match=r"at 0001, older .*\(0002\): run `pgbell migrate`"):
            schema.check(current, later_code)


def test_the_current_schema_passes_and_says_whether_the_demo_is_there(later_code):
    assert schema.check(["0002"], later_code) == schema.Verdict(demo=False)
    assert schema.check(["0002", "demo_0001"], later_code) == schema.Verdict(demo=True)


def test_a_newer_schema_is_served_with_a_warning(later_code):
    verdict = schema.check(["0003"], later_code)
    assert verdict.warnings and "newer pgbell" in verdict.warnings[0]


@pytest.mark.parametrize("current", [None, []])
def test_no_schema_at_all_is_refused(current, later_code):
    with pytest.raises(SchemaError, match="no pgbell schema: run `pgbell migrate`"):
        schema.check(current, later_code)


def test_this_pgbells_own_heads_are_what_a_migrated_database_has(database_url):
    from pgbell.ops import migrate

    assert schema.check(migrate.current_revisions(database_url)) == schema.Verdict(demo=True)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_pgbell_serve_refuses_an_unmigrated_database(empty_database, workers):
    """One process exits with the reason; a supervisor, once its workers
    have failed to start a few times, says the same on its last line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGBELL_")}
    env.update(DATABASE_URL=empty_database, PGBELL_JWT_SECRET=JWT_SECRET)
    out = subprocess.run(
        [sys.executable, "-m", "pgbell", "serve", "--workers", workers, "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "run `pgbell migrate` first" in out.stderr.splitlines()[-1], out.stderr
