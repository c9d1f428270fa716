"""The npm package in client/: its declarations type-check, its tarball
holds the modules pgbell serves (byte for byte) and nothing else, and its
package.json says what an app needs to know.

An app installing the tarball and running it in a browser, and the React
recipe of docs/client.md, are in tests/browser/test_client_npm.py.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

import pgbell
from tests.client_package import (
    CLIENT,
    ROOT,
    pack,
    require_tools,
    run,
    tarball_files,
    tool,
)

SERVED = ROOT / "client_demo"
MANIFEST = json.loads((CLIENT / "package.json").read_text())


@pytest.fixture(autouse=True)
def tools() -> None:
    require_tools()


def test_declarations_typed_examples_and_conformance_pass_tsc():
    """`tsc --noEmit` on types/, examples/ (plain and React) and
    test/conformance.ts, which holds the modules to the declarations."""
    run([tool("tsc"), "--noEmit", "-p", str(CLIENT)], "tsc --noEmit -p client", CLIENT)


def test_the_tarball_holds_the_served_modules_their_types_and_nothing_else(tmp_path: Path):
    tarball = pack(tmp_path)
    files = tarball_files(tarball)
    modules = sorted(p.name for p in (SERVED / "pgbell-client").glob("*.js"))
    assert modules, "no modules in client_demo/pgbell-client/"
    expected = {
        "package.json",
        "README.md",
        "dist/LICENSE",
        "dist/pgbell-client.js",
        *(f"dist/pgbell-client/{name}" for name in modules),
        "dist/react.js",
        "types/index.d.ts",
        "types/react.d.ts",
    }
    assert files == expected, (
        f"unexpected: {sorted(files - expected)}, missing: {sorted(expected - files)}"
    )

    # what npm ships is what pgbell serves: one copy of the code
    with tarfile.open(tarball) as tar:

        def shipped(name: str) -> bytes:
            return tar.extractfile(f"package/{name}").read()

        sources = {
            "dist/pgbell-client.js": SERVED / "pgbell-client.js",
            **{f"dist/pgbell-client/{n}": SERVED / "pgbell-client" / n for n in modules},
            "dist/react.js": CLIENT / "src" / "react.js",
        }
        for name, source in sources.items():
            assert shipped(name) == source.read_bytes(), f"{name} is not {source}"


def test_package_json_is_an_esm_package_with_no_runtime_dependencies():
    m = MANIFEST
    assert m["name"] == "pgbell-client"
    assert m["version"] == pgbell.__version__, "the client's version is pgbell's"
    assert m["type"] == "module"
    assert "dependencies" not in m, f"runtime dependencies: {m.get('dependencies')}"
    assert m["peerDependencies"] == {"react": ">=18"}
    assert m["peerDependenciesMeta"] == {"react": {"optional": True}}
    assert m["exports"]["."] == {
        "types": "./types/index.d.ts",
        "default": "./dist/pgbell-client.js",
    }
    assert m["exports"]["./react"] == {"types": "./types/react.d.ts", "default": "./dist/react.js"}
    assert m["scripts"]["prepack"] == "node scripts/stage.mjs"


IMPORT = """
import { PgBellClient, PgBellError } from "pgbell-client";
import * as react from "pgbell-client/react";
const client = new PgBellClient({ crossTab: false, storage: false });
console.log(JSON.stringify({
  state: client.state,
  frozen: Object.isFrozen(client.state),
  error: new PgBellError(401, "unauthorized", "no") instanceof Error,
  react: Object.keys(react).sort(),
}));
"""


def test_the_package_imports_by_its_exports_without_a_browser():
    """Resolved by name through `exports` (a package may import itself), in
    Node: importing it, as server-side rendering does, touches no browser API."""
    run(["node", "scripts/stage.mjs"], "staging dist/", CLIENT)
    out = run(["node", "--input-type=module", "-e", IMPORT], "node importing pgbell-client", CLIENT)
    assert json.loads(out) == {
        "state": {
            "user": None,
            "status": "offline",
            "notifications": [],
            "unreadCount": 0,
            "highestId": 0,
            "leader": False,
        },
        "frozen": True,
        "error": True,
        "react": ["PgBellProvider", "usePgBell", "usePgBellClient", "usePgBellEvent"],
    }
