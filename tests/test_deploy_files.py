"""The files of deploy/ as files: the systemd units pass systemd-analyze
verify (CI has no systemd to run them) and the commands they start exist
and run; docs/deployment.md walks through every file and setting of deploy/
that the tests run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.deploy_support import DEPLOY, PGBELL, ROOT, env_file, exec_start


def test_the_units_pass_systemd_analyze_and_name_commands_that_run(tmp_path):
    """systemd-analyze verify reads the units as systemd would (without a
    running systemd), with pgbell where the units expect it replaced by this
    checkout's; the commands they start exist and answer."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (Debian's systemd package)"
    env_dir = tmp_path / "etc"
    env_dir.mkdir()
    for unit in ("pgbell@.service", "pgbell-migrate.service"):
        text = (DEPLOY / "systemd" / unit).read_text()
        assert "/opt/pgbell/bin/pgbell" in text
        (tmp_path / unit).write_text(
            text.replace("/opt/pgbell/bin/pgbell", str(PGBELL)).replace(
                "/etc/pgbell/", f"{env_dir}/"
            )
        )
    (tmp_path / "pgbell@8081.service").symlink_to(tmp_path / "pgbell@.service")
    done = subprocess.run(
        [analyze, "verify", "--man=no", "pgbell@8081.service", "pgbell-migrate.service"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # warnings (an unknown key, a bad value) go to stderr without failing
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    unit = (DEPLOY / "systemd" / "pgbell@.service").read_text()
    for line in ("LimitNOFILE=65536", "KillSignal=SIGTERM", "TimeoutStopSec=30"):
        assert line in unit.splitlines()
    for argv in (
        exec_start(DEPLOY / "systemd" / "pgbell@.service", "8081"),
        exec_start(DEPLOY / "systemd" / "pgbell-migrate.service"),
    ):
        assert argv[1] in ("serve", "migrate")
        # the unit's own arguments, parsed by the command it names
        helped = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=30)
        assert helped.returncode == 0, f"{argv}: {helped.stderr}"
        assert helped.stdout.startswith(f"usage: pgbell {argv[1]}"), helped.stdout


def test_the_migrate_unit_migrates_an_empty_database(empty_database):
    argv = exec_start(DEPLOY / "systemd" / "pgbell-migrate.service")
    env = {**os.environ, **env_file(DEPLOY / "migrate.env"), "DATABASE_URL": empty_database}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "at the latest migration" in done.stdout


def test_the_guide_walks_through_every_file_and_setting_the_tests_run():
    """docs/deployment.md and deploy/ are one: the guide names every file of
    deploy/ and every variable of deploy/pgbell.env, and these tests read
    every file of deploy/."""
    guide = (ROOT / "docs" / "deployment.md").read_text()
    tests = (ROOT / "tests" / "deploy_support.py").read_text() + Path(__file__).read_text()
    files = sorted(p for p in DEPLOY.rglob("*") if p.is_file())
    assert len(files) == 6, files
    for path in files:
        assert f"`{path.relative_to(ROOT).as_posix()}`" in guide, f"the guide skips {path}"
        assert path.name in tests, f"no test runs {path}"
    for variable in env_file(DEPLOY / "pgbell.env"):
        assert f"`{variable}`" in guide, f"the guide does not explain {variable}"
