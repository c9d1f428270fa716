"""The browser client's session and links, in a real Chromium.

The session (token, user, expiry) lives in the tab's memory and its
sessionStorage, never in localStorage: a tab opened later gets it from an
open tab over the BroadcastChannel. A notification's action_url is
followed only on the page's own origin (or one the application allows).
"""

from __future__ import annotations

import json
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
    web_storage,
)
from tests.support import add_user, insert_deal, login, wait_until

pytestmark = pytest.mark.browser

SESSION_KEY = "pgbell.session"


def token_of(ws_url: str) -> str:
    """The token a socket was opened with (the client puts it in the URL)."""
    return parse_qs(urlsplit(ws_url).query)["token"][0]


def pgbell_entries(stored: dict[str, str], token: str) -> list[str]:
    """The keys of a storage area that are pgbell's or hold the token."""
    return sorted(k for k, v in stored.items() if "pgbell" in k or token in k or token in v)


async def test_the_session_stays_out_of_local_storage_and_survives_a_reload(
    server, database_url, context
):
    add_user(database_url, "alice")
    page = await context.new_page()
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    await log_in(page, server.base, "alice")
    await expect_state(page, "live", why="after logging in")
    token = token_of(sockets[0])

    local = await web_storage(page, "localStorage")
    assert pgbell_entries(local, token) == [], f"pgbell's session in localStorage: {local}"
    own = await web_storage(page, "sessionStorage")
    assert token in own.get(SESSION_KEY, ""), f"the tab kept no session for a reload: {own}"

    await page.reload()
    await expect_state(page, "live", why="after a reload")
    await expect(page.get_by_test_id("login-submit"), "a reload asked to log in").to_be_hidden()
    assert len(sockets) == 2, f"expected one socket per page load: {sockets}"
    assert token_of(sockets[1]) == token, "the reload did not reuse the session"
    local = await web_storage(page, "localStorage")
    assert pgbell_entries(local, token) == [], f"pgbell's session in localStorage: {local}"


async def test_a_tab_opened_later_gets_the_session_from_an_open_tab(server, database_url, context):
    add_user(database_url, "alice")
    sockets: list[str] = []
    logins: list[str] = []
    tab_a = await context.new_page()
    tab_a.on("websocket", lambda ws: sockets.append("A"))
    await log_in(tab_a, server.base, "alice")
    await expect_state(tab_a, "live")

    tab_b = await context.new_page()
    tab_b.on("websocket", lambda ws: sockets.append("B"))
    tab_b.on("request", lambda r: logins.append(r.url) if "/auth/login" in r.url else None)
    await tab_b.goto(server.base + "/")
    await expect_state(tab_b, "live", why="in the tab opened later")
    await expect(tab_b.get_by_test_id("unread-count"), "tab B did not show the app").to_be_visible()
    await expect(tab_b.get_by_test_id("login-submit")).to_be_hidden()
    assert sockets == ["A"], f"expected one socket in the browser, from tab A: {sockets}"
    assert logins == [], f"tab B logged in again: {logins}"

    # B now holds the session itself: with A gone, it leads and survives a reload
    stored = await web_storage(tab_b, "sessionStorage")
    assert SESSION_KEY in stored, f"tab B keeps no session of its own: {stored}"
    assert await web_storage(tab_b, "localStorage") == {}
    await tab_a.close()
    await wait_until(lambda: sockets == ["A", "B"], "tab B taking over the socket after A closed")
    await tab_b.reload()
    await expect_state(tab_b, "live", why="after reloading B with A closed")
    await expect(tab_b.get_by_test_id("login-submit")).to_be_hidden()
    assert logins == [], f"tab B logged in again: {logins}"


async def test_logout_in_one_tab_logs_out_every_tab_and_clears_their_storage(
    server, database_url, context
):
    _, tab_a = await live_user(context, server.base, database_url)
    tab_b = await context.new_page()
    await tab_b.goto(server.base + "/")
    await expect_state(tab_b, "live", why="in the tab opened later")
    for name, tab in (("A", tab_a), ("B", tab_b)):
        stored = await web_storage(tab, "sessionStorage")
        assert SESSION_KEY in stored, f"tab {name} keeps no session of its own: {stored}"

    await tab_b.get_by_test_id("logout").click()
    for name, tab in (("A", tab_a), ("B", tab_b)):
        await expect(
            tab.get_by_test_id("login-submit"), f"tab {name} stayed logged in"
        ).to_be_visible()
        assert await web_storage(tab, "sessionStorage") == {}, f"tab {name} kept its session"
        assert await web_storage(tab, "localStorage") == {}

    # and neither comes back on a reload
    for name, tab in (("A", tab_a), ("B", tab_b)):
        await tab.reload()
        await expect(
            tab.get_by_test_id("login-submit"), f"tab {name} logged in again on reload"
        ).to_be_visible()
        await expect(tab.get_by_test_id("unread-count")).to_be_hidden()


async def test_an_old_session_in_local_storage_is_removed_on_start(
    server, database_url, context, http
):
    alice = add_user(database_url, "alice")
    token = await login(http, server.base, "alice")  # a token the server still accepts
    page = await context.new_page()
    await page.goto(server.base + "/")
    await expect(page.get_by_test_id("login-submit")).to_be_visible()
    legacy = {"token": token, "user": {"id": alice, "username": "alice"}, "expiresAt": None}
    await page.evaluate("(s) => localStorage.setItem('pgbell.session', s)", json.dumps(legacy))

    await page.reload()
    await expect(
        page.get_by_test_id("login-submit"), "the client started with the old localStorage token"
    ).to_be_visible()
    assert await page.evaluate("localStorage.getItem('pgbell.session')") is None


async def test_an_external_action_url_is_shown_but_not_followed(server, database_url, context):
    alice, page = await live_user(context, server.base, database_url)
    elsewhere: list[str] = []

    async def record(route):
        elsewhere.append(route.request.url)
        await route.fulfill(status=200, content_type="text/html", body="<h1>elsewhere</h1>")

    await context.route("https://evil.example/**", record)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pgbell.templates (kind, title, action_url)"
            " VALUES ('report_ready', 'Report ready: {name}', 'https://evil.example/{name}')"
        )
        conn.execute(
            "SELECT pgbell.notify('report_ready', user_ids => %s, data => %s::jsonb)",
            ([str(alice)], json.dumps({"name": "q4"})),
        )
        (stored,) = conn.execute(
            "SELECT action_url FROM pgbell.notifications WHERE kind = 'report_ready'"
        ).fetchone()
    assert stored == "https://evil.example/q4", "the database did not keep the external URL"
    deal = insert_deal(database_url, "Globex", alice)
    external, relative = notification_ids(database_url, alice)
    await expect_unread(page, 2, why="after both notifications")

    # shown, in the list and as a toast, but as no link
    await expect(item(page, external)).to_contain_text("Report ready: q4")
    await expect(
        item(page, external).get_by_role("link"), "an external action_url became a link"
    ).to_have_count(0)
    toast = page.get_by_test_id("toast").filter(has_text="Report ready: q4")
    await expect(toast).to_be_visible()
    await expect(toast.get_by_role("link"), "the toast links elsewhere").to_have_count(0)

    # a click reads it and stays; a click on the relative one goes there
    await item(page, external).get_by_role("button").click()
    await expect(item(page, external), "the click was not handled").to_have_attribute(
        "data-read", "true"
    )
    await item(page, relative).get_by_role("link").click()
    await expect(page, "the relative action_url was not followed").to_have_url(
        f"{server.base}/deals/{deal}"
    )
    await expect(page.locator("#deal-body")).to_contain_text("Globex")
    assert elsewhere == [], f"the browser went to the external URL: {elsewhere}"


async def test_allowed_link_origins_are_the_only_other_origins_followed(server, context):
    page = await context.new_page()
    await page.goto(server.base + "/")
    urls = [
        "/deals/7",
        f"{server.base}/deals/8",
        "https://app.example.com/reports/q4?tab=1",
        "https://evil.example/x",
        "//evil.example/x",
        "http://app.example.com/reports/q4",
        "javascript:alert(1)",
        None,
    ]
    followed = await page.evaluate(
        """async (urls) => {
            const { PgBellClient } = await import("/static/pgbell-client.js");
            const strict = new PgBellClient({ crossTab: false });
            const wider = new PgBellClient({
                crossTab: false,
                allowedLinkOrigins: ["https://app.example.com"],
            });
            return urls.map((u) => [
                strict.actionUrl({ action_url: u }),
                wider.actionUrl({ action_url: u }),
            ]);
        }""",
        urls,
    )
    assert dict(zip(urls, map(tuple, followed), strict=True)) == {
        "/deals/7": (f"{server.base}/deals/7", f"{server.base}/deals/7"),
        f"{server.base}/deals/8": (f"{server.base}/deals/8", f"{server.base}/deals/8"),
        "https://app.example.com/reports/q4?tab=1": (
            None,
            "https://app.example.com/reports/q4?tab=1",
        ),
        "https://evil.example/x": (None, None),
        "//evil.example/x": (None, None),
        "http://app.example.com/reports/q4": (None, None),  # another origin: http, not https
        "javascript:alert(1)": (None, None),
        None: (None, None),
    }


async def test_a_read_the_socket_refuses_is_made_over_rest(start_server, database_url, context):
    """Reads beyond PGBELL_WS_READS_PER_SECOND get an error frame; the client
    has already shown the item read, so it must make that true over REST."""
    srv = await start_server(PGBELL_WS_READS_PER_SECOND="0.1")  # a burst of one read
    alice, page = await live_user(context, srv.base, database_url)
    insert_deal(database_url, "Globex", alice)
    insert_deal(database_url, "Initech", alice)
    first, second = notification_ids(database_url, alice)
    await expect_unread(page, 2, why="after two deals")
    for note in (first, second):
        await item(page, note).get_by_role("link").click()
        await page.go_back()
        await expect(item(page, note), "clicked item not shown read").to_have_attribute(
            "data-read", "true"
        )
    for note in (first, second):
        await wait_until(
            lambda note=note: read_at(database_url, note) is not None,
            f"notification {note} read in the database",
        )
    await expect_unread(page, 0, why="after both reads were confirmed")
