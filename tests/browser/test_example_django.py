"""examples/django in a real Chromium: log in on the Django page, which loads
pgbell's client from pgbell's server, hands it the token Django issued, and
shows the toast and the badge when a task is created through Django."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
from playwright.async_api import expect

from tests.support import wait_until
from tests.test_example_django import Stack, create_task, django_login, running

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
async def django_stack(empty_database: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running(empty_database, tmp_path) as s:
        yield s


def _read_at(database_url: str, title: str):
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT read_at FROM pgbell.notifications n JOIN auth_user u ON u.id::text = n.user_id"
            " WHERE u.username = 'alice' AND n.title = %s",
            (title,),
        ).fetchone()[0]


async def test_the_django_page_shows_a_task_notification_live(django_stack: Stack, context):
    s = django_stack
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    await page.goto(f"{s.django}/")  # login_required: Django's login form
    await page.locator("#id_username").fill("alice")
    await page.locator("#id_password").fill("alice-pw")
    await page.get_by_role("button", name="Log in").click()
    await expect(
        page.get_by_test_id("bell-status"), "the page's pgbell client never went live"
    ).to_have_text("live", timeout=10_000)
    await expect(page.get_by_test_id("badge")).to_be_hidden()

    mallory = await django_login(s, "mallory")
    try:
        await create_task(s, mallory, "Feed the cat", "alice")
    finally:
        await mallory.close()

    toast = page.get_by_test_id("toast").filter(has_text="New task: Feed the cat")
    await expect(toast, "no toast for the new task").to_be_visible(timeout=5_000)
    await expect(page.get_by_test_id("badge"), "the badge never showed 1").to_have_text("1")

    # Its action_url is a page of the Django site; opening it marks it read.
    await (
        page.get_by_test_id("bell-list").get_by_role("link", name="New task: Feed the cat").click()
    )
    await expect(page.get_by_role("heading", name="Feed the cat")).to_be_visible()
    await wait_until(
        lambda: _read_at(s.database_url, "New task: Feed the cat") is not None,
        "alice's notification marked read after she opened it",
    )
    assert errors == [], f"errors on the page: {errors}"
