"""What the browser tests do on the demo page, by its stable data-testid hooks."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from playwright.async_api import Page, expect

from tests.support import JWT_SECRET, add_user, insert_deal

ROOT = Path(__file__).resolve().parents[2]


# the React example page (client/examples/react/), which `make client` builds
REACT_PAGE = "/static/react/index.html"


async def log_in(
    page: Page, base: str, username: str, password: str = "pw", path: str = "/"
) -> None:
    """Open the app (the demo at `path`), log in, and wait until the socket
    (or its fallback) is up."""
    await page.goto(base + path)
    await page.get_by_test_id("login-username").fill(username)
    await page.get_by_test_id("login-password").fill(password)
    await page.get_by_test_id("login-submit").click()
    await expect(
        page.get_by_test_id("unread-count"), "the app never showed the bell"
    ).to_be_visible(timeout=5_000)


async def live_user(context, base: str, database_url: str, name: str = "alice", path: str = "/"):
    """A new user, logged in on a new tab, with the page live: (user id, page)."""
    user_id = add_user(database_url, name)
    page = await context.new_page()
    await log_in(page, base, name, path=path)
    await expect_state(page, "live", why=f"after {name} logged in")
    return user_id, page


async def expect_state(page: Page, state: str, timeout: float = 5_000, why: str = "") -> None:
    await expect(
        page.get_by_test_id("connection-status"),
        f"connection status never became {state!r} {why}".strip(),
    ).to_have_attribute("data-state", state, timeout=timeout)


async def expect_unread(page: Page, count: int, timeout: float = 5_000, why: str = "") -> None:
    await expect(
        page.get_by_test_id("unread-count"), f"unread badge never showed {count} {why}".strip()
    ).to_have_text(str(count), timeout=timeout)


async def web_storage(page: Page, which: str) -> dict[str, str]:
    """Every key and value of the page's `localStorage` or `sessionStorage`."""
    return await page.evaluate(
        """(which) => {
            const store = window[which];
            const all = {};
            for (let i = 0; i < store.length; i++) all[store.key(i)] = store.getItem(store.key(i));
            return all;
        }""",
        which,
    )


def page_errors(page: Page) -> list[str]:
    """A list that collects the page's uncaught errors and console errors
    (a refused script or style under the page's CSP is one)."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    return errors


def item(page: Page, note_id: int):
    return page.locator(f'[data-testid="notification-item"][data-id="{note_id}"]')


def notification_ids(db_url: str, user_id: int) -> list[int]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT id FROM pgbell.notifications WHERE user_id = %s ORDER BY id", (str(user_id),)
        ).fetchall()
    return [r[0] for r in rows]


def read_at(db_url: str, note_id: int):
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT read_at FROM pgbell.notifications WHERE id = %s", (note_id,)
        ).fetchone()[0]


async def restart_and_catch_up(
    server_process: ServerProcess, database_url: str, context, path: str, sig: signal.Signals
) -> None:
    """A leader tab and a follower tab of `path` are live; the server stops
    (`sig`) and two deals are committed while it is down. Once it is back,
    both tabs show every notification, the unread count and a toast for the
    last one missed."""
    alice, page = await live_user(context, server_process.base, database_url, path=path)
    follower = await context.new_page()  # mirrors the leader's connection state
    await follower.goto(server_process.base + path)
    await expect_state(follower, "live", why="in the follower tab")
    insert_deal(database_url, "Before", alice)
    await expect_unread(page, 1, why="before the restart")

    await server_process.stop(sig)
    for tab in (page, follower):
        await expect_state(tab, "reconnecting", why=f"after the server got {sig.name}")
    insert_deal(database_url, "While down 1", alice)
    insert_deal(database_url, "While down 2", alice)
    await server_process.start()

    ids = notification_ids(database_url, alice)
    for tab in (page, follower):
        # the backoff is capped at 30 s; down for about a second, the next
        # attempt comes within a few seconds
        await expect_state(tab, "live", timeout=20_000, why="after the server came back")
        for note_id in ids:
            await expect(item(tab, note_id), f"missed notification {note_id}").to_be_visible()
        await expect_unread(tab, 3, why="after catching up")
        await expect(
            tab.get_by_test_id("toast").filter(has_text="While down 2"), "no toast for a missed one"
        ).to_be_visible()


@dataclass
class ServerProcess:
    """`pgbell serve` as its own process, so a test can kill and restart it."""

    database_url: str
    port: int
    proc: asyncio.subprocess.Process | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 20.0) -> None:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_url,
            PGBELL_JWT_SECRET=JWT_SECRET,
            PGBELL_HOST="127.0.0.1",
            PGBELL_PORT=str(self.port),
            PGBELL_LOG_LEVEL="WARNING",
            PGBELL_WORKERS="1",
        )
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pgbell",
            "serve",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                err = (await self.proc.stderr.read()).decode(errors="replace")[-2000:]
                raise AssertionError(f"pgbell serve exited with {self.proc.returncode}: {err}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return
        await self.stop()
        raise AssertionError(f"pgbell serve did not listen on {self.port} within {timeout} s")

    async def stop(self, sig: signal.Signals = signal.SIGKILL, timeout: float = 15.0) -> None:
        """SIGKILL drops every connection without a close frame; SIGTERM is
        a graceful shutdown, which closes sockets with 1001."""
        if self.proc is None:
            return
        if self.proc.returncode is None:
            os.killpg(self.proc.pid, sig)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            os.killpg(self.proc.pid, signal.SIGKILL)
            await asyncio.wait_for(self.proc.wait(), 10)
            raise AssertionError(
                f"pgbell serve did not exit within {timeout} s of {sig.name}"
            ) from None
        finally:
            self.proc = None
