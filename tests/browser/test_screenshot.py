"""The page with every priority on it; PGBELL_SCREENSHOT=1 saves docs/screenshot.png.

    PGBELL_SCREENSHOT=1 .venv/bin/pytest tests/browser/test_screenshot.py

Without the variable the test still runs, and checks that the four
priorities look different, but writes nowhere.
"""

from __future__ import annotations

import json
import os

import psycopg
import pytest
from playwright.async_api import expect

from tests.browser.pages import ROOT, expect_state, expect_unread, item, log_in, notification_ids
from tests.support import add_user, insert_deal

pytestmark = pytest.mark.browser
PRIORITIES = ("low", "normal", "high", "urgent")


def notify(db_url: str, user_id: int, deal_id: int, title: str, amount: float, priority: str):
    """The public SQL API, as any writer would call it."""
    data = {"deal_id": deal_id, "title": title, "amount": amount}
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pgbell.notify('deal_created', user_ids => %s, data => %s::jsonb,"
            " priority => %s::pgbell.priority)",
            ([str(user_id)], json.dumps(data), priority),
        )


async def test_priorities_look_different_and_urgent_toasts_stay(
    server, database_url, context, tmp_path
):
    alice = add_user(database_url, "alice")
    # bob owns the deals, so alice hears only what notify() sends her
    bob = add_user(database_url, "bob")
    stored = [
        ("Umbrella archive cleanup", 800, "low"),
        ("Globex pilot", 4_500, "low"),
        ("Initech licence upgrade", 18_250, "normal"),
        ("Wayne Enterprises", 32_000, "normal"),
        ("Hooli data platform", 64_000, "high"),
    ]
    for title, amount, priority in stored:
        notify(
            database_url,
            alice,
            insert_deal(database_url, title, bob, amount),
            title,
            amount,
            priority,
        )
    page = await context.new_page()
    await log_in(page, server.base, "alice")
    await expect_state(page, "live")
    await expect_unread(page, 5, why="after five notify() calls")
    await expect(page.get_by_test_id("toast"), "stored items must not toast").to_have_count(0)
    await item(page, notification_ids(database_url, alice)[0]).get_by_role("link").click()
    await page.get_by_role("link", name="All notifications").click()
    await expect_unread(page, 4, why="after reading one")

    # live ones pop up as toasts; the urgent one stays until dismissed
    deal = insert_deal(database_url, "Acme Corp renewal", bob, 120_000)
    notify(database_url, alice, deal, "Acme Corp renewal", 120_000, "high")
    notify(database_url, alice, deal, "Acme Corp: contract ends today", 120_000, "urgent")
    toasts = page.get_by_test_id("toast")
    await expect(toasts.and_(page.locator("[data-priority=urgent]"))).to_be_visible()
    await expect(toasts).to_have_count(2)

    colours = {}
    for priority in PRIORITIES:
        first = page.locator(f'[data-testid="notification-item"][data-priority="{priority}"]').first
        await expect(first, f"no {priority} notification on the page").to_be_visible()
        colours[priority] = await first.evaluate(
            "el => getComputedStyle(el).borderLeftColor + getComputedStyle(el).backgroundColor"
        )
    assert len(set(colours.values())) == 4, f"priorities share a look: {colours}"

    await page.evaluate("window.scrollTo(0, 0)")
    await page.mouse.move(0, 0)
    target = ROOT / "docs" / "screenshot.png"
    if os.environ.get("PGBELL_SCREENSHOT") != "1":
        target = tmp_path / "screenshot.png"
    await page.screenshot(path=str(target), animations="disabled")
    assert target.stat().st_size > 10_000, "the screenshot is suspiciously small"

    # the high toast hides by itself; the urgent one waits to be dismissed
    high = toasts.and_(page.locator("[data-priority=high]"))
    await expect(high, "the high toast did not hide by itself").to_have_count(0, timeout=10_000)
    urgent = toasts.and_(page.locator("[data-priority=urgent]"))
    await expect(urgent, "the urgent toast hid by itself").to_be_visible()
    await urgent.get_by_role("button", name="Dismiss").click()
    await expect(toasts).to_have_count(0)
