"""The npm package as an app gets it: `npm pack`, install the tarball,
type-check against it, bundle, and run in a real Chromium against a real
server; and docs/client.md's React recipe, bundled as it is written.

Each bundle runs in the page pgbell serves at /static/react/index.html,
under pgbell's own Content-Security-Policy: the test hands the browser the
bundle in place of that page's script (Playwright's routing), so the page
itself, its origin and its policy stay pgbell's.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.browser.pages import (
    REACT_PAGE,
    ROOT,
    expect_state,
    expect_unread,
    item,
    log_in,
    notification_ids,
    page_errors,
    read_at,
)
from tests.client_package import (
    CLIENT,
    build_react_page,
    bundle,
    install_app,
    pack,
    require_tools,
    run,
    tool,
)
from tests.support import add_user, insert_deal, login, wait_until

pytestmark = pytest.mark.browser

DOC = ROOT / "docs" / "client.md"
TSCONFIG = {
    "compilerOptions": {
        "strict": True,
        "noEmit": True,
        "target": "es2022",
        "module": "esnext",
        "moduleResolution": "bundler",
        "lib": ["es2022", "dom", "dom.iterable"],
        "jsx": "react-jsx",
        "types": [],
        "skipLibCheck": False,
        "verbatimModuleSyntax": True,
    },
    "include": ["src/**/*.ts", "src/**/*.tsx"],
}


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Path:
    """An app that installed pgbell-client from its packed tarball, with
    React and React's types at the versions client/package-lock.json pins."""
    require_tools()
    build_react_page()  # the page whose script the tests replace
    work = tmp_path_factory.mktemp("npm")
    tarball = pack(work)
    app = work / "app"
    install_app(app, tarball, "react", "react-dom", "@types/react", "@types/react-dom")
    installed = app / "node_modules" / "pgbell-client"
    assert installed.is_dir() and not installed.is_symlink(), "the tarball was not unpacked"
    lock = json.loads((app / "package-lock.json").read_text())
    resolved = lock["packages"]["node_modules/pgbell-client"]["resolved"]
    assert resolved.endswith(tarball.name), (
        f"pgbell-client not installed from the tarball: {resolved}"
    )
    (app / "src").mkdir()
    return app


async def run_in_page(context, base: str, body: bytes) -> None:
    """Have pgbell's React page run the module `body` instead of its own app.js."""

    async def answer(route):
        await route.fulfill(status=200, content_type="text/javascript", body=body)

    await context.route(f"{base}/static/react/app.js", answer)


async def test_an_app_installs_the_packed_tarball_type_checks_and_runs_it(
    app, server, database_url, context
):
    # the typed examples, type-checked against the tarball's declarations
    shutil.copy(CLIENT / "examples" / "typed.ts", app / "src" / "typed.ts")
    shutil.copy(CLIENT / "examples" / "react" / "app.tsx", app / "src" / "app.tsx")
    (app / "tsconfig.json").write_text(json.dumps(TSCONFIG, indent=2))
    run([tool("tsc"), "--noEmit", "-p", str(app)], "tsc --noEmit against the tarball", app)

    built = bundle(app / "src" / "app.tsx", app / "out" / "app.js")
    await run_in_page(context, server.base, built)
    alice = add_user(database_url, "alice")
    page = await context.new_page()
    errors = page_errors(page)
    await log_in(page, server.base, "alice", path=REACT_PAGE)
    await expect_state(page, "live", why="in the app built from the tarball")
    insert_deal(database_url, "Packed", alice)
    (note_id,) = notification_ids(database_url, alice)
    await expect(item(page, note_id), "the app did not render the notification").to_be_visible()
    await expect_unread(page, 1, why="after the SQL commit")
    await item(page, note_id).get_by_role("button").click()
    await expect_unread(page, 0, why="after reading it")
    await wait_until(lambda: read_at(database_url, note_id) is not None, "read_at in the database")
    assert errors == [], f"errors in the app: {errors}"


def recipe() -> str:
    """docs/client.md's React recipe: its one ```jsx block."""
    blocks = re.findall(r"```jsx\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, f"docs/client.md should have one ```jsx recipe, has {len(blocks)}"
    return blocks[0]


async def test_the_react_recipe_in_the_docs_runs_as_written(
    app, server, database_url, context, http
):
    (app / "src" / "recipe.jsx").write_text(recipe())
    # the page the recipe expects: one with an element #bell (modules run in
    # the order they are imported)
    (app / "src" / "host.js").write_text(
        'const bell = document.createElement("div");\n'
        'bell.id = "bell";\n'
        "document.body.replaceChildren(bell);\n"
    )
    (app / "src" / "recipe-page.js").write_text('import "./host.js";\nimport "./recipe.jsx";\n')
    built = bundle(app / "src" / "recipe-page.js", app / "out" / "recipe.js")
    await run_in_page(context, server.base, built)
    alice = add_user(database_url, "alice")
    token = await login(http, server.base, "alice")
    session = {"token": token, "user": {"id": alice, "username": "alice"}, "expiresAt": None}
    # the recipe's restore() finds this tab's session, as after a login and a reload
    origin, stored = json.dumps(server.base), json.dumps(json.dumps(session))
    await context.add_init_script(
        f"if (location.origin === {origin}) sessionStorage.setItem('pgbell.session', {stored});"
    )
    page = await context.new_page()
    errors = page_errors(page)
    logged: list[str] = []
    page.on("console", lambda m: logged.append(m.text) if m.type == "log" else None)
    await page.goto(server.base + REACT_PAGE)
    bell = page.locator("#bell")
    await expect(bell, "the recipe never showed 'live'").to_contain_text("live, 0 unread")

    insert_deal(database_url, "Recipe deal", alice)
    (note_id,) = notification_ids(database_url, alice)
    entry = bell.get_by_role("button", name="New deal: Recipe deal")
    await expect(entry.locator("strong"), "the recipe did not render it unread").to_be_visible()
    await expect(bell).to_contain_text("live, 1 unread")
    await wait_until(
        lambda: "new: New deal: Recipe deal" in logged, "the recipe's usePgBellEvent logging it"
    )

    await entry.click()
    await expect(entry, "the recipe did not render the read").to_be_disabled()
    await expect(bell).to_contain_text("live, 0 unread")
    await wait_until(lambda: read_at(database_url, note_id) is not None, "read_at in the database")
    assert errors == [], f"errors running the recipe: {errors}"
