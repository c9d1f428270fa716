"""End-to-end: the demo page in a real Chromium against a real server and database.

Every notification here comes from a plain SQL writer on its own
connection, so each test crosses the whole path: trigger, pg_notify,
listener, hub, WebSocket (or REST), client state, DOM.
"""

from __future__ import annotations

import signal
import time
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from playwright.async_api import expect

from tests.browser.pages import (
    expect_state,
    expect_unread,
    item,
    live_user,
    log_in,
    notification_ids,
    read_at,
    restart_and_catch_up,
)
from tests.support import add_user, insert_deal, wait_until

pytestmark = pytest.mark.browser


async def test_live_notification_shows_as_toast_item_and_badge(server, database_url, context):
    alice, page = await live_user(context, server.base, database_url)
    await expect_unread(page, 0, why="before any deal")

    started = time.monotonic()
    insert_deal(database_url, "Acme rockets", alice)
    (note_id,) = notification_ids(database_url, alice)
    left_ms = max(0.0, 1.0 - (time.monotonic() - started)) * 1000

    toast = page.get_by_test_id("toast").filter(has_text="Acme rockets")
    await expect(toast, "no toast within 1 s of the SQL commit").to_be_visible(timeout=left_ms)
    await expect(toast).to_have_attribute("data-priority", "normal")
    await expect(item(page, note_id), "no list item for the deal").to_have_attribute(
        "data-read", "false", timeout=left_ms
    )
    await expect_unread(page, 1, timeout=left_ms, why="within 1 s of the SQL commit")


async def test_a_writer_marking_unread_or_archiving_shows_in_every_tab(
    server, database_url, context
):
    alice, page = await live_user(context, server.base, database_url)
    follower = await context.new_page()
    await follower.goto(server.base + "/")
    await expect_state(follower, "live", why="in the follower tab")
    insert_deal(database_url, "Kept", alice)
    insert_deal(database_url, "Archived", alice)
    kept, archived = notification_ids(database_url, alice)
    tabs = (page, follower)
    for tab in tabs:
        await expect_unread(tab, 2, why="after two deals")

    def sql(statement: str) -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(statement, (kept, archived))

    sql("UPDATE pgbell.notifications SET read_at = now() WHERE id IN (%s, %s)")
    for tab in tabs:
        await expect_unread(tab, 0, why="after a writer read both")
    sql("UPDATE pgbell.notifications SET read_at = NULL WHERE id IN (%s, %s)")
    for tab in tabs:
        await expect_unread(tab, 2, why="after a writer set read_at back to NULL")
        await expect(item(tab, kept)).to_have_attribute("data-read", "false")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE pgbell.notifications SET archived_at = now() WHERE id = %s", (archived,)
        )
    for tab in tabs:
        await expect_unread(tab, 1, why="after a writer archived one of them")
        await expect(item(tab, archived), "an archived item still listed").to_have_count(0)
        await expect(item(tab, kept)).to_be_visible()


async def test_click_marks_read_and_opens_the_deal(server, database_url, context):
    alice, page = await live_user(context, server.base, database_url)
    globex = insert_deal(database_url, "Globex", alice)
    initech = insert_deal(database_url, "Initech", alice)
    first, second = notification_ids(database_url, alice)
    await expect_unread(page, 2, why="after two deals")
    items = page.get_by_test_id("notification-item")
    await expect(items, "the list is not newest first").to_have_count(2)
    assert await items.nth(0).get_attribute("data-id") == str(second)

    await item(page, first).get_by_role("link").click()

    await expect_unread(page, 1, why="after clicking one of two")
    await expect(item(page, first), "clicked item not shown read").to_have_attribute(
        "data-read", "true"
    )
    await expect(item(page, second)).to_have_attribute("data-read", "false")
    await expect(page, "not navigated to the action URL").to_have_url(
        f"{server.base}/deals/{globex}"
    )
    await expect(page.locator("#deal-body"), "the deal view did not load").to_contain_text("Globex")
    await wait_until(lambda: read_at(database_url, first) is not None, "read_at in the database")
    assert read_at(database_url, second) is None

    # The action URL is a real page: loaded directly, the app comes up there.
    await page.goto(f"{server.base}/deals/{globex}")
    await expect(page.locator("#deal-body")).to_contain_text("Globex")
    await expect_state(page, "live", why="when loaded at the deal's URL")
    await expect_unread(page, 1, why="when loaded at the deal's URL")

    # and the keyboard alone does the same
    await item(page, second).get_by_role("link").focus()
    await page.keyboard.press("Enter")
    await expect_unread(page, 0, why="after Enter on the second item")
    await expect(page).to_have_url(f"{server.base}/deals/{initech}")
    await expect(page.locator("#deal-body")).to_contain_text("Initech")


async def test_tabs_share_one_socket_and_hand_over(server, database_url, context):
    alice = add_user(database_url, "alice")
    sockets: list[str] = []  # which tab opened each socket (URLs carry the token)
    tab_a = await context.new_page()
    tab_a.on("websocket", lambda ws: sockets.append("A"))
    await log_in(tab_a, server.base, "alice")
    await expect_state(tab_a, "live")

    tab_b = await context.new_page()
    tab_b.on("websocket", lambda ws: sockets.append("B"))
    await tab_b.goto(server.base + "/")
    await expect_state(tab_b, "live", why="in the follower tab")

    insert_deal(database_url, "Hooli", alice)
    insert_deal(database_url, "Umbrella", alice)
    first, second = notification_ids(database_url, alice)
    for tab, name in ((tab_a, "A"), (tab_b, "B")):
        await expect(item(tab, second), f"tab {name} did not get the deal").to_be_visible()
        await expect(tab.get_by_test_id("toast").filter(has_text="Umbrella")).to_be_visible()
        await expect_unread(tab, 2, why=f"in tab {name}")
    assert sockets == ["A"], f"expected one socket, from tab A: {sockets}"

    # a read in the leader shows in the follower, and the other way round
    await item(tab_a, first).get_by_role("link").click()
    await expect(item(tab_b, first), "A's read not shown in B").to_have_attribute(
        "data-read", "true"
    )
    await expect_unread(tab_b, 1, why="in B after a read in A")
    await item(tab_b, second).get_by_role("link").click()
    await expect(item(tab_a, second), "B's read not shown in A").to_have_attribute(
        "data-read", "true"
    )
    await expect_unread(tab_a, 0, why="in A after a read in B")
    assert len(sockets) == 1, f"reads must not open sockets: {sockets}"

    # the leader tab closes: B takes the lock and opens the one socket
    await tab_a.close()
    await wait_until(lambda: len(sockets) == 2, "tab B opening a socket after A closed", 3.0)
    assert sockets == ["A", "B"], sockets
    await expect_state(tab_b, "live", timeout=3_000, why="after the handover")
    insert_deal(database_url, "Stark", alice)
    await expect(
        tab_b.get_by_test_id("toast").filter(has_text="Stark"), "no live frame in B as leader"
    ).to_be_visible(timeout=3_000)
    await expect_unread(tab_b, 1, why="in B after the handover")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "shut-down"])
async def test_server_restart_reconnects_and_catches_up(server_process, database_url, context, sig):
    await restart_and_catch_up(server_process, database_url, context, "/", sig)


async def test_blocked_websocket_falls_back_to_polling(server, database_url, context):
    alice = add_user(database_url, "alice")
    blocked = True

    async def route(ws):
        # a proxy that refuses WebSockets: the upgrade never reaches pgbell
        if blocked:
            await ws.close(code=1011, reason="blocked")
        else:
            ws.connect_to_server()

    await context.route_web_socket("**/ws**", route)
    page = await context.new_page()
    await log_in(page, server.base, "alice")
    await expect_state(page, "polling", timeout=10_000, why="with the socket blocked")

    insert_deal(database_url, "Polled", alice)
    (note_id,) = notification_ids(database_url, alice)
    await expect(item(page, note_id), "notification did not arrive by polling").to_be_visible(
        timeout=10_000
    )
    await expect(page.get_by_test_id("toast").filter(has_text="Polled")).to_be_visible()
    await expect_unread(page, 1, why="while polling")

    # a read while polling goes over REST
    await item(page, note_id).get_by_role("link").click()
    await expect_unread(page, 0, why="after a read while polling")
    await wait_until(lambda: read_at(database_url, note_id) is not None, "REST read stored")

    # the socket works again: the next attempt (forced by `online`) goes live
    blocked = False
    await page.evaluate("window.dispatchEvent(new Event('online'))")
    await expect_state(page, "live", timeout=10_000, why="once the socket was unblocked")
    insert_deal(database_url, "Live again", alice)
    await expect(page.get_by_test_id("toast").filter(has_text="Live again")).to_be_visible(
        timeout=2_000
    )


@pytest.fixture
async def short_token_server(start_server):
    return await start_server(PGBELL_JWT_TTL="3")


async def test_expired_token_returns_to_login(short_token_server, database_url, context):
    _, page = await live_user(context, short_token_server.base, database_url)

    error = page.get_by_test_id("login-error")
    await expect(error, "no 'session expired' message after the token's 3 s").to_contain_text(
        "expired", timeout=10_000
    )
    await expect(page.get_by_test_id("login-username")).to_be_visible()
    stored = await page.evaluate("sessionStorage.getItem('pgbell.session')")
    assert stored is None, "the expired token is still stored"

    # a reload stays logged out
    await page.reload()
    await expect(page.get_by_test_id("login-submit")).to_be_visible()
    await expect(page.get_by_test_id("unread-count")).to_be_hidden()


async def test_wrong_password_shows_error(server, database_url, context):
    add_user(database_url, "alice")
    page = await context.new_page()
    await page.goto(server.base + "/")
    await page.get_by_test_id("login-username").fill("alice")
    await page.get_by_test_id("login-password").fill("nope")
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("login-error")).to_have_text("Wrong username or password.")


@pytest.fixture
async def tiny_queue_server(start_server):
    """A server that closes any socket with more than 2 frames queued (1013)."""
    return await start_server(PGBELL_SEND_QUEUE_SIZE="2")


async def test_slow_consumer_close_reconnects_without_losing_any(
    tiny_queue_server, database_url, context
):
    alice = add_user(database_url, "alice")
    sockets = []
    page = await context.new_page()
    # only the query parameter names: the URL carries the token
    page.on("websocket", lambda ws: sockets.append(set(parse_qs(urlsplit(ws.url).query))))
    await log_in(page, tiny_queue_server.base, "alice")
    await expect_state(page, "live")

    def notify(count: int) -> None:
        # `count` notifications in one transaction: one wake-up, that many frames
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "SELECT pgbell.notify('deal_created', user_ids => %s, priority => 'low',"
                " data => jsonb_build_object('deal_id', g, 'title', 'Burst ' || g, 'amount', g))"
                " FROM generate_series(1, %s) AS g",
                ([str(alice)], count),
            )

    # one the page has seen, so that there is a notification to resume from:
    # the burst's own frames may all be dropped with the socket
    notify(1)
    await expect_unread(page, 1, why="before the burst")
    notify(60)
    await wait_until(lambda: len(sockets) >= 2, "a reconnect after the 1013 close")
    assert "since" in sockets[1], "the reconnect did not resume with ?since="
    await expect_state(page, "live", why="after the slow-consumer close")
    await expect_unread(page, 61, why="after the burst")
    await expect(page.get_by_test_id("notification-item"), "burst items lost").to_have_count(61)
    await expect(page.get_by_test_id("toast"), "a burst must not bury the page").to_have_count(4)


async def test_deal_form_mark_all_read_and_logout_across_tabs(server, database_url, context):
    alice, tab_a = await live_user(context, server.base, database_url)
    tab_b = await context.new_page()
    await tab_b.goto(server.base + "/")
    await expect_state(tab_b, "live", why="in the follower tab")

    # the follower creates deals through the form; the trigger notifies alice
    for title, amount in (("Soylent", "1500"), ("Tyrell", "99.5")):
        await tab_b.get_by_test_id("deal-title").fill(title)
        await tab_b.get_by_test_id("deal-amount").fill(amount)
        await tab_b.get_by_test_id("deal-submit").click()
        for tab in (tab_a, tab_b):
            await expect(tab.get_by_test_id("toast").filter(has_text=title)).to_be_visible()
    await expect_unread(tab_a, 2, why="after two deals from the form")

    await tab_b.get_by_test_id("mark-all-read").click()
    for tab in (tab_a, tab_b):
        await expect_unread(tab, 0, why="after mark all read")
        await expect(
            tab.locator('[data-testid="notification-item"][data-read="false"]')
        ).to_have_count(0)
    with psycopg.connect(database_url) as conn:
        unread = conn.execute(
            "SELECT count(*) FROM pgbell.notifications WHERE user_id = %s AND read_at IS NULL",
            (str(alice),),
        ).fetchone()[0]
    assert unread == 0, f"{unread} notifications still unread in the database"

    # logging out in one tab logs out every tab
    await tab_a.get_by_test_id("logout").click()
    for tab in (tab_a, tab_b):
        await expect(tab.get_by_test_id("login-submit"), "a tab stayed logged in").to_be_visible()
        await expect(tab.get_by_test_id("login-error")).to_be_hidden()
    assert await tab_b.evaluate("sessionStorage.getItem('pgbell.session')") is None
