"""A wheel built from the repository works installed anywhere, as PROTOCOL.md
v2 "Install" promises: it holds `pgbell` with its SQL and demo page and
nothing else, and from a fresh virtual environment outside the checkout its
`pgbell` command migrates a new database and serves.

The wheel is built (`pip wheel`, build isolation on) from a copy of the files
`git ls-files` lists, so the checkout stays clean and the wheel is proved to
need nothing untracked.

Dependencies: the new venv gets a plain `pip install <wheel>`, resolved from
the wheel's own metadata on PyPI, not `--no-deps` plus a .pth that borrows the
project venv's site-packages. Measured here it takes 9 to 18 s with pip's
cache warm (16 s cold), far under the 60 s that would have justified the
shortcut; the venv is made `--without-pip` and filled by this venv's pip
(`pip --python`), which saves another 4 s. The plain install also proves
more: the wheel's dependency list is complete, and nothing of the project
venv (its editable finder for `pgbell` included) is on the new venv's path.
The isolation is asserted anyway. The dependencies are whatever PyPI has
today, as for any user: a breaking release of one shows up here first.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import aiohttp
import psycopg
import pytest

from tests.support import JWT_SECRET, free_port, wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BUILD_WAIT = 300.0  # pip fetches setuptools for the isolated build
INSTALL_WAIT = 300.0  # and the dependencies, on a cold cache
COMMAND_WAIT = 60.0
SERVE_WAIT = 20.0
STOP_WAIT = 15.0

REQUIRED = [
    "pgbell/__init__.py",
    "pgbell/bus/hub.py",
    "pgbell/queries.sql",
    "pgbell/db/schema.sql",
    "pgbell/db/migrations/env.py",
    "pgbell/db/migrations/versions/0001_initial.py",
    "pgbell/db/migrations/versions/0001_initial.sql",
    "pgbell/client_demo/index.html",
    "pgbell/client_demo/pgbell-client.js",
]
# A checkout folder -> where its files land in the wheel (pyproject's package-dir),
# and the kinds of file pgbell reads at run time.
SHIPPED = {"server": "pgbell", "db": "pgbell/db", "client_demo": "pgbell/client_demo"}
RUNTIME_SUFFIXES = {".py", ".sql", ".mako", ".html", ".js", ".css"}


@dataclass
class Built:
    wheel: Path
    version: str
    tracked: list[str]
    untracked: list[str]  # runtime files in the working tree that git does not track

    def hint(self) -> str:
        """For a failure message: files the wheel lacks because git does not track them."""
        if not self.untracked:
            return ""
        return f"\n(not in the wheel because git does not track them: {self.untracked})"


@dataclass
class Installed:
    prefix: Path  # the new venv
    cwd: Path  # a directory outside the checkout to run commands from

    @property
    def pgbell(self) -> str:
        return str(self.prefix / "bin" / "pgbell")

    @property
    def python(self) -> str:
        return str(self.prefix / "bin" / "python")


def _run(
    cmd: list[str], what: str, timeout: float, hint: str = "", **kwargs
) -> subprocess.CompletedProcess[str]:
    """Run `cmd` to completion within `timeout`; fail naming `what`, with its output."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{what}: not finished within {timeout} s ({' '.join(cmd)})") from None
    assert done.returncode == 0, (
        f"{what} exited {done.returncode} ({' '.join(cmd)}):\n"
        f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}{hint}"
    )
    return done


def _child_env(**extra: str) -> dict[str, str]:
    """This environment without what could make a child import the checkout
    or the project venv instead of the wheel's copy."""
    drop = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV"}
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


def _git_ls_files(root: Path, *options: str) -> list[str]:
    git = shutil.which("git")
    if git is None:
        pytest.fail(
            "git is not installed: this test builds the wheel from what `git ls-files` lists"
        )
    try:
        listed = subprocess.run(
            [git, "-C", str(root), "ls-files", "-z", *options],
            capture_output=True,
            text=True,
            timeout=COMMAND_WAIT,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"`git ls-files` in {root}: not finished in {COMMAND_WAIT} s"
        ) from None
    if listed.returncode != 0:
        pytest.fail(f"`git ls-files` in {root} failed: {listed.stderr.strip()}")
    return [name for name in listed.stdout.split("\0") if name]


def _is_runtime(name: str) -> bool:
    """A file of the checkout that pgbell may read at run time."""
    path = PurePosixPath(name)
    return path.parts[0] in SHIPPED and len(path.parts) > 1 and path.suffix in RUNTIME_SUFFIXES


def _copy_tracked(root: Path, dest: Path) -> list[str]:
    """Copy the files git tracks in `root` (as they are in the working tree) to `dest`."""
    copied = []
    for name in _git_ls_files(root):
        source = root / name
        if not source.is_file():  # deleted in the working tree (or a submodule)
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        copied.append(name)
    assert "pyproject.toml" in copied, f"git lists no pyproject.toml in {root}"
    return copied


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("wheel").resolve()
    assert not base.is_relative_to(ROOT), f"the test's temporary directory {base} is inside {ROOT}"
    return base


@pytest.fixture(scope="module")
def built(work: Path) -> Built:
    """The wheel, built from a copy of the tracked files."""
    copy = work / "checkout"
    tracked = _copy_tracked(ROOT, copy)
    dist = work / "dist"
    # The copy's path must be absolute: `pip wheel checkout` would fetch a PyPI project of that name.
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(copy)],
        "building the wheel (pip wheel)",
        BUILD_WAIT,
        cwd=work,
    )
    wheels = sorted(dist.glob("*.whl"))
    assert len(wheels) == 1 and wheels[0].name.startswith("pgbell-"), (
        f"expected one pgbell wheel in {dist}, found {[w.name for w in wheels]}"
    )
    untracked = [n for n in _git_ls_files(ROOT, "--others", "--exclude-standard") if _is_runtime(n)]
    # name-version-python-abi-platform.whl; a wheel's version has no '-'
    return Built(wheels[0], wheels[0].name.split("-")[1], tracked, untracked)


@pytest.fixture(scope="module")
def installed(work: Path, built: Built) -> Installed:
    """A fresh venv outside the checkout with the wheel and its dependencies
    installed (pip's cache keeps this to seconds after the first run)."""
    prefix = work / "venv"
    # No pip of its own (saves seconds): the project's pip installs into it (`--python`).
    _run(
        [sys.executable, "-m", "venv", "--without-pip", str(prefix)],
        "creating the venv",
        COMMAND_WAIT,
    )
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(prefix / "bin" / "python"),
            "install",
            str(built.wheel),
        ],
        "installing the wheel and its dependencies",
        INSTALL_WAIT,
        cwd=work,
        env=_child_env(),
    )
    cwd = work / "elsewhere"
    cwd.mkdir()
    return Installed(prefix, cwd)


def test_wheel_holds_pgbell_with_its_sql_and_demo_page_and_nothing_else(built: Built):
    with zipfile.ZipFile(built.wheel) as whl:
        names = set(whl.namelist())
    missing = [n for n in REQUIRED if n not in names]
    assert not missing, f"missing from {built.wheel.name}: {missing}"
    triggers = [n for n in names if PurePosixPath(n).parent == PurePosixPath("pgbell/db/triggers")]
    assert any(n.endswith(".sql") for n in triggers), f"no pgbell/db/triggers/*.sql in {triggers}"

    top = {n.split("/", 1)[0] for n in names}
    expected_top = {"pgbell", f"pgbell-{built.version}.dist-info"}
    assert top == expected_top, (
        f"at the top of the wheel beyond {expected_top}: {top - expected_top}"
    )

    # Every tracked file pgbell could read at run time ships, not only those named above.
    runtime = {
        f"{SHIPPED[folder]}/{rest}"
        for name in built.tracked
        if _is_runtime(name)
        for folder, _, rest in [name.partition("/")]
    }
    assert runtime, "no tracked file under server/, db/ or client_demo/"
    unshipped = sorted(runtime - names)
    assert not unshipped, f"tracked but not in the wheel (pyproject's package-data?): {unshipped}"


PROBE = """
import importlib.metadata, json
import pgbell, pgbell.db, pgbell.client_demo
from pgbell.resources import client_dir, sql_dir
try:
    import server
except ImportError:
    server = None
print(json.dumps({
    "pgbell": pgbell.__file__,
    "pgbell.db": pgbell.db.__file__,
    "pgbell.client_demo": pgbell.client_demo.__file__,
    "sql_dir()": str(sql_dir()),
    "client_dir()": str(client_dir()),
    "version": importlib.metadata.version("pgbell"),
    "server": server and (server.__file__ or repr(server)),
}))
"""


def test_installed_pgbell_is_the_wheels_copy_not_the_checkout(installed: Installed, built: Built):
    done = _run(
        [installed.python, "-c", PROBE],
        "importing pgbell in the new venv",
        COMMAND_WAIT,
        built.hint(),
        cwd=installed.cwd,
        env=_child_env(),
    )
    found = json.loads(done.stdout)
    assert found.pop("server") is None, f"`import server` works in the new venv: {done.stdout}"
    assert found.pop("version") == built.version, done.stdout
    for what, path in found.items():
        resolved = Path(path).resolve()
        assert resolved.is_relative_to(installed.prefix), (
            f"{what} is {resolved}, outside the new venv {installed.prefix}"
        )
        assert not resolved.is_relative_to(ROOT), f"{what} is {resolved}, in the checkout"


def test_pgbell_version(installed: Installed, built: Built):
    done = _run(
        [installed.pgbell, "--version"],
        "pgbell --version",
        COMMAND_WAIT,
        built.hint(),
        cwd=installed.cwd,
        env=_child_env(),
    )
    assert done.stdout.strip() == f"pgbell {built.version}", done.stdout + done.stderr


async def test_pgbell_migrates_and_serves_from_anywhere(
    installed: Installed, built: Built, empty_database: str, tmp_path: Path
):
    env = _child_env(DATABASE_URL=empty_database, PGBELL_JWT_SECRET=JWT_SECRET)

    migrate = await asyncio.create_subprocess_exec(
        installed.pgbell,
        "migrate",
        cwd=installed.cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(migrate.communicate(), COMMAND_WAIT)
    except TimeoutError:
        migrate.kill()
        await migrate.wait()
        raise AssertionError(f"pgbell migrate: not finished within {COMMAND_WAIT} s") from None
    assert migrate.returncode == 0, (
        f"pgbell migrate exited {migrate.returncode}: {out.decode()}{built.hint()}"
    )
    # Only pgbell's own schema: the demo tables may move behind `migrate --demo`.
    async with await psycopg.AsyncConnection.connect(empty_database) as conn:
        cur = await conn.execute("SELECT to_regclass('pgbell.notifications')")
        assert (await cur.fetchone())[0] is not None, "pgbell migrate made no pgbell.notifications"

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("wb") as out_file:
        serve = await asyncio.create_subprocess_exec(
            installed.pgbell,
            "serve",
            "--workers",
            "1",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            cwd=installed.cwd,
            env=env,
            stdout=out_file,
            stderr=subprocess.STDOUT,
        )
    try:
        async with aiohttp.ClientSession() as http:

            async def healthy() -> bool:
                assert serve.returncode is None, (
                    f"pgbell serve exited {serve.returncode}: {log.read_text()[-3000:]}"
                    + built.hint()
                )
                try:
                    async with http.get(f"{base}/healthz") as r:
                        return r.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await wait_until(healthy, "pgbell serve answering /healthz 200", timeout=SERVE_WAIT)

            async with http.get(f"{base}/") as r:
                assert (r.status, r.content_type) == (200, "text/html"), (
                    f"GET /: {r.status} {r.content_type}"
                )
            async with http.get(f"{base}/static/pgbell-client.js") as r:
                assert r.status == 200, f"GET /static/pgbell-client.js: {r.status}"
                body = await r.read()
            with zipfile.ZipFile(built.wheel) as whl:
                shipped = whl.read("pgbell/client_demo/pgbell-client.js")
            assert body == shipped, "/static/pgbell-client.js is not the wheel's file"

        serve.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(serve.wait(), STOP_WAIT)
        except TimeoutError:
            raise AssertionError(f"pgbell serve did not exit {STOP_WAIT} s after SIGTERM") from None
        assert code == 0, (
            f"pgbell serve exited {code} on SIGTERM: {log.read_text()[-3000:]}{built.hint()}"
        )
    finally:
        if serve.returncode is None:
            serve.kill()
            await serve.wait()
