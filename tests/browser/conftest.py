"""Fixtures for the browser tier: a real Chromium driven by playwright.

The browser is Debian's /usr/bin/chromium (no playwright download). Without
it these tests skip locally, but fail under CI=true: in CI a missing
browser is a broken build, never a silently skipped tier.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.browser.pages import ServerProcess
from tests.support import free_port

CHROMIUM = Path(os.environ.get("PGBELL_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _require_chromium() -> None:
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return
    message = f"no Chromium at {CHROMIUM} (set PGBELL_CHROMIUM or install chromium)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message + ": the browser tests must run in CI", pytrace=False)
    pytest.skip(message)


@pytest.fixture
async def browser() -> AsyncIterator:
    _require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def context(browser) -> AsyncIterator:
    """One browser profile: its tabs share Web Locks and BroadcastChannels
    (each keeps its own sessionStorage)."""
    ctx = await browser.new_context(viewport={"width": 1200, "height": 800})
    ctx.set_default_timeout(10_000)
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest.fixture
async def server_process(database_url) -> AsyncIterator[ServerProcess]:
    """`pgbell serve` in its own process, which a test may kill and restart."""
    proc = ServerProcess(database_url, free_port())
    await proc.start()
    yield proc
    await proc.stop()
