"""The React example page in a real Chromium: pgbell-client/react's hook
against a real server and database.

The page (client/examples/react/, built by `make client` and here from the
current sources) renders only through `usePgBell()` and `usePgBellEvent()`:
whatever changes on it, React re-rendered. pgbell serves it at
/static/react/index.html under the same Content-Security-Policy as its
other pages, so it has no inline script or style.
"""

from __future__ import annotations

import signal

import pytest
from playwright.async_api import expect

from tests.browser.pages import (
    REACT_PAGE,
    expect_state,
    expect_unread,
    item,
    live_user,
    notification_ids,
    page_errors,
    read_at,
    restart_and_catch_up,
)
from tests.client_package import build_react_page, require_tools
from tests.support import insert_deal, wait_until

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module", autouse=True)
def react_page() -> None:
    require_tools()
    build_react_page()


async def test_the_hook_re_renders_on_a_live_notification_from_sql(
    server, database_url, context, http
):
    async with http.get(server.base + REACT_PAGE) as r:
        assert r.status == 200, f"GET {REACT_PAGE}: {r.status}"
        policy = r.headers.get("Content-Security-Policy", "")
    assert "script-src 'self'" in policy and "style-src 'self'" in policy, policy

    alice, page = await live_user(context, server.base, database_url, path=REACT_PAGE)
    errors = page_errors(page)
    await expect_unread(page, 0, why="before any deal")

    insert_deal(database_url, "Acme rockets", alice)
    (note_id,) = notification_ids(database_url, alice)
    await expect(item(page, note_id), "the hook did not render the notification").to_have_attribute(
        "data-read", "false"
    )
    await expect_unread(page, 1, why="after the SQL commit")
    await expect(
        page.get_by_test_id("toast").filter(has_text="Acme rockets"), "no toast from the event hook"
    ).to_be_visible()

    # markRead from the hook: shown at once, stored, and confirmed
    await item(page, note_id).get_by_role("button").click()
    await expect(item(page, note_id), "the read was not rendered").to_have_attribute(
        "data-read", "true"
    )
    await expect_unread(page, 0, why="after reading it")
    await wait_until(lambda: read_at(database_url, note_id) is not None, "read_at in the database")
    assert errors == [], f"errors on the React page: {errors}"


async def test_a_read_in_one_tab_shows_in_the_other(server, database_url, context):
    alice, tab_a = await live_user(context, server.base, database_url, path=REACT_PAGE)
    tab_b = await context.new_page()
    errors = page_errors(tab_b)
    await tab_b.goto(server.base + REACT_PAGE)  # gets the session from tab A
    await expect_state(tab_b, "live", why="in the tab opened later")

    insert_deal(database_url, "Hooli", alice)
    insert_deal(database_url, "Umbrella", alice)
    insert_deal(database_url, "Stark", alice)
    first, second, third = notification_ids(database_url, alice)
    for tab, name in ((tab_a, "A"), (tab_b, "B")):
        await expect(item(tab, third), f"tab {name} did not render the deals").to_be_visible()
        await expect_unread(tab, 3, why=f"in tab {name}")

    # a read in the follower (over REST) shows in the leader, and back (socket)
    await item(tab_b, first).get_by_role("button").click()
    await expect(item(tab_a, first), "B's read not shown in A").to_have_attribute(
        "data-read", "true"
    )
    await expect_unread(tab_a, 2, why="in A after a read in B")
    await item(tab_a, second).get_by_role("button").click()
    await expect(item(tab_b, second), "A's read not shown in B").to_have_attribute(
        "data-read", "true"
    )
    await expect_unread(tab_b, 1, why="in B after a read in A")

    await tab_b.get_by_test_id("mark-all-read").click()
    for tab, name in ((tab_a, "A"), (tab_b, "B")):
        await expect_unread(tab, 0, why=f"in {name} after mark all read")
        await expect(item(tab, third)).to_have_attribute("data-read", "true")
    for note_id in (first, second, third):
        await wait_until(
            lambda note_id=note_id: read_at(database_url, note_id) is not None,
            f"notification {note_id} read in the database",
        )
    assert errors == [], f"errors on the React page: {errors}"


async def test_after_a_server_restart_it_reconnects_and_shows_what_was_missed(
    server_process, database_url, context
):
    await restart_and_catch_up(server_process, database_url, context, REACT_PAGE, signal.SIGKILL)
