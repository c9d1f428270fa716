"""The npm package in client/ as its tests use it: its tools, `npm pack`, and
an app that installs the packed tarball.

`make client` (part of `make test`'s set-up) installs the tools from the npm
registry into client/node_modules. Without them these tests skip locally,
but fail under CI=true: in CI a missing tool is a broken build, never a
silently skipped test. Nothing here reaches the registry: an app installs
the tarball `--offline`, and takes React from client/node_modules.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "client"
TOOLS = CLIENT / "node_modules" / ".bin"
NPM_WAIT = 120.0  # an offline install of one local tarball
TOOL_WAIT = 120.0


def require_tools() -> None:
    """Skip (fail under CI) unless node, npm and client/node_modules are there."""
    missing = [name for name in ("node", "npm") if shutil.which(name) is None]
    if not (TOOLS / "tsc").exists() or not (TOOLS / "esbuild").exists():
        missing.append("client/node_modules (run `make client`)")
    if not missing:
        return
    message = f"the client package's tools are missing: {', '.join(missing)}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message + ": the client's tests must run in CI", pytrace=False)
    pytest.skip(message)


def run(cmd: list[str], what: str, cwd: Path, timeout: float = TOOL_WAIT) -> str:
    """Run `cmd` to completion within `timeout`; fail naming `what`, with its output."""
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{what}: not finished within {timeout} s ({' '.join(cmd)})") from None
    assert done.returncode == 0, (
        f"{what} exited {done.returncode} ({' '.join(cmd)}):\n"
        f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


def tool(name: str) -> str:
    return str(TOOLS / name)


def pack(dest: Path) -> Path:
    """`npm pack` of client/ (its prepack stages dist/) into `dest`: the tarball."""
    out = run(
        ["npm", "pack", "--pack-destination", str(dest), "--json", "--loglevel=error"],
        "npm pack",
        CLIENT,
    )
    (entry,) = json.loads(out)
    return dest / entry["filename"]


def tarball_files(tarball: Path) -> set[str]:
    """The files of a packed tarball, without npm's `package/` prefix."""
    with tarfile.open(tarball) as tar:
        return {m.name.removeprefix("package/") for m in tar.getmembers() if m.isfile()}


def install_app(app: Path, tarball: Path, *packages: str) -> None:
    """Make `app` an npm project that depends on the tarball, and install it
    offline. The app's other `packages` (React and its types) are linked from
    client/node_modules, where the set-up installed them as the lock pins
    them: the tarball is what is under test, and npm's cache may hold no
    metadata for the others."""
    app.mkdir(parents=True, exist_ok=True)
    manifest = {
        "name": "pgbell-client-example-app",
        "private": True,
        "type": "module",
        "dependencies": {"pgbell-client": f"file:{tarball}"},
    }
    (app / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
    run(
        ["npm", "install", "--offline", "--no-audit", "--no-fund", "--loglevel=error"],
        "npm install of the tarball",
        app,
        NPM_WAIT,
    )
    for name in packages:
        link = app / "node_modules" / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(CLIENT / "node_modules" / name, target_is_directory=True)


def bundle(entry: Path, outfile: Path) -> bytes:
    """One browser ES module from `entry` with its imports, as an app's build
    would make it; returns it."""
    run(
        [
            tool("esbuild"),
            str(entry),
            "--bundle",
            "--format=esm",
            "--jsx=automatic",
            "--define:process.env.NODE_ENV='production'",
            "--log-level=warning",
            f"--outfile={outfile}",
        ],
        f"esbuild {entry.name}",
        entry.parent,
    )
    return outfile.read_bytes()


def build_react_page() -> None:
    """The React example page, into client_demo/react/, from the current sources."""
    run(["node", "scripts/build-example.mjs"], "building the React example page", CLIENT)
