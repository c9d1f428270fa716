"""The client's state is a series of immutable snapshots, in a real Chromium.

A store that compares by reference (React's useSyncExternalStore, a Svelte
store) only sees a change when the state is a new object: so every change
must make one, frozen, and leave the previous snapshot as it was. And every
notification that arrives live is announced with a `notification` event,
whatever else brought it into the state first.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.browser.pages import notification_ids
from tests.support import add_user, insert_deal, login, wait_until

pytestmark = pytest.mark.browser

# One client on a page of pgbell's origin, with the token the test got: it
# records every snapshot that `subscribe` hands it, every `change` event,
# and the type of every socket frame once the client has handled it.
START = """async ([token, options]) => {
    const { PgBellClient } = await import("/static/pgbell-client.js");
    window.frames = [];
    const Native = window.WebSocket;
    window.WebSocket = class extends Native {
        constructor(...args) {
            super(...args);
            // after every listener of this message, the client's included
            this.addEventListener("message", (e) =>
                setTimeout(() => window.frames.push(JSON.parse(e.data).type)));
        }
    };
    const client = new PgBellClient({ crossTab: false, storage: false, ...options });
    window.snapshots = [];
    window.changes = [];
    window.stop = client.subscribe((state) => window.snapshots.push(state));
    client.addEventListener("change", (e) => window.changes.push(e.detail.state));
    window.announced = [];
    client.addEventListener("notification", (e) => window.announced.push(e.detail.notification.id));
    // the path of every REST answer, once the client has made its state of it
    window.answered = [];
    const nativeFetch = window.fetch;
    window.fetch = async (...args) => {
        const response = await nativeFetch(...args);
        const json = response.json.bind(response);
        response.json = async () => {
            const body = await json();
            setTimeout(() => window.answered.push(new URL(response.url).pathname));
            return body;
        };
        return response;
    };
    window.client = client;
    if (token) client.useToken(token, { expiresIn: 3600 });
    else await client.restore(); // the session of an open tab
}"""

SUMMARY = """() => window.snapshots.map((s) => ({
    status: s.status,
    unread: s.unreadCount,
    ids: s.notifications.map((n) => n.id),
    read: s.notifications.filter((n) => n.read_at).map((n) => n.id),
}))"""

CHECKS = """() => {
    const all = window.snapshots;
    const frozen = (s) =>
        Object.isFrozen(s) && Object.isFrozen(s.notifications) &&
        s.notifications.every((n) => Object.isFrozen(n));
    const distinct = new Set(all).size === all.length;
    const current = window.client.state;
    return {
        count: all.length,
        distinct,
        allFrozen: all.every(frozen),
        latestIsCurrent: all[all.length - 1] === current,
        getSnapshot: window.client.getSnapshot() === current,
        // the events carry the same snapshots that subscribe() handed out
        eventsMatch: window.changes.every((s, i) => s === all[i + 1]),
        // a write changes nothing (it throws in strict-mode code)
        writeRefused: (() => {
            try { current.unreadCount = 99; } catch { /* strict mode */ }
            return current.unreadCount !== 99;
        })(),
    };
}"""


async def test_every_change_is_a_new_frozen_snapshot_and_old_ones_stay(
    server, database_url, context, http
):
    alice = add_user(database_url, "alice")
    token = await login(http, server.base, "alice")
    page = await context.new_page()
    await page.goto(server.base + "/")
    await page.evaluate(START, [token, {}])

    async def summary() -> list[dict]:
        return await page.evaluate(SUMMARY)

    async def live() -> bool:
        return any(s["status"] == "live" for s in await summary())

    await wait_until(live, "a snapshot with status live")
    insert_deal(database_url, "Acme", alice)
    (note_id,) = notification_ids(database_url, alice)

    async def shows_it() -> bool:
        return (await summary())[-1]["ids"] == [note_id]

    await wait_until(shows_it, f"a snapshot with notification {note_id}")
    await page.evaluate("(id) => window.client.markRead(id)", note_id)

    async def read() -> bool:
        return (await summary())[-1]["read"] == [note_id]

    await wait_until(read, f"a snapshot with notification {note_id} read")

    states = await summary()
    # each snapshot still shows what it showed when it was handed out
    assert states[0] == {"status": "offline", "unread": 0, "ids": [], "read": []}, states
    assert {"status": "connecting", "unread": 0, "ids": [], "read": []} in states, states
    before = states.index(next(s for s in states if s["ids"]))
    assert states[before - 1]["ids"] == [], states
    assert states[before] == {
        "status": "live",
        "unread": 1,
        "ids": [note_id],
        "read": [],
    }, states
    assert states[-1] == {"status": "live", "unread": 0, "ids": [note_id], "read": [note_id]}
    checks = await page.evaluate(CHECKS)
    assert checks == {
        "count": len(states),
        "distinct": True,
        "allFrozen": True,
        "latestIsCurrent": True,
        "getSnapshot": True,
        "eventsMatch": True,
        "writeRefused": True,
    }, checks


async def test_a_change_that_changes_nothing_makes_no_new_snapshot(
    server, database_url, context, http
):
    """A store re-renders on every new snapshot: the same read confirmed
    twice (the local one, then the server's `read` frame) makes one."""
    alice = add_user(database_url, "alice")
    insert_deal(database_url, "Acme", alice)
    (note_id,) = notification_ids(database_url, alice)
    token = await login(http, server.base, "alice")
    page = await context.new_page()
    await page.goto(server.base + "/")
    await page.evaluate(START, [token, {}])

    async def listed() -> bool:
        return note_id in (await page.evaluate(SUMMARY))[-1]["ids"]

    await wait_until(listed, f"notification {note_id} in the snapshot")
    count = len(await page.evaluate(SUMMARY))
    # markRead shows the read at once; the server's `read` frame then
    # confirms it with the same count
    await page.evaluate("(id) => window.client.markRead(id)", note_id)

    async def confirmed() -> bool:
        return "read" in await page.evaluate("() => window.frames")

    await wait_until(confirmed, "the server's read frame, handled by the client")
    await page.evaluate("(id) => window.client.markRead(id)", note_id)  # read already: no-op
    states = await page.evaluate(SUMMARY)
    new = states[count:]
    assert [s["read"] for s in new] == [[note_id]], f"expected one new snapshot: {new}"


# Tabs that share one socket, on channel and lock names of their own (the
# demo page's own client uses the default ones).
SHARED = {"crossTab": True, "channelName": "state-test", "lockName": "state-test-leader"}

KEPT = """(id) => {
    const copies = window.snapshots.map((s) => s.notifications.find((n) => n.id === id));
    const held = copies.filter(Boolean);
    return { snapshots: held.length, objects: new Set(held).size };
}"""


async def test_an_unchanged_notification_keeps_its_object_in_every_tab(
    server, database_url, context, http
):
    alice = add_user(database_url, "alice")
    insert_deal(database_url, "First", alice)
    (first,) = notification_ids(database_url, alice)
    token = await login(http, server.base, "alice")
    leader = await context.new_page()
    await leader.goto(server.base + "/")
    await leader.evaluate(START, [token, SHARED])
    follower = await context.new_page()
    await follower.goto(server.base + "/")
    await follower.evaluate(START, [None, SHARED])

    async def shows(page, ids: list[int]) -> bool:
        latest = (await page.evaluate(SUMMARY))[-1]
        return latest["status"] == "live" and latest["ids"] == ids

    for name, page in (("leader", leader), ("follower", follower)):
        await wait_until(lambda page=page: shows(page, [first]), f"the {name} showing {first}")
    insert_deal(database_url, "Second", alice)
    _, second = notification_ids(database_url, alice)
    for name, page in (("leader", leader), ("follower", follower)):
        await wait_until(
            lambda page=page: shows(page, [second, first]), f"the {name} showing {second}"
        )
        kept = await page.evaluate(KEPT, first)
        assert kept["snapshots"] >= 2 and kept["objects"] == 1, (
            f"the {name} made new objects for an unchanged notification: {kept}"
        )
    assert await follower.evaluate("() => window.client.state.leader") is False


async def test_a_live_notification_is_announced_even_if_the_list_fetch_brought_it_first(
    server, database_url, context, http
):
    """After connecting, the client fetches the recent list (read items
    too); a notification committed meanwhile can be in that answer before
    its own frame arrives. It must still get its `notification` event (the
    page's toast), and be in the list once."""
    alice = add_user(database_url, "alice")
    token = await login(http, server.base, "alice")
    page = await context.new_page()
    release_list = asyncio.Event()
    release_frames = asyncio.Event()
    held: list[str] = []

    async def hold_list(route):
        await release_list.wait()
        await route.continue_()

    async def hold_notification_frames(ws):
        server_side = ws.connect_to_server()

        async def to_page(message):
            if '"type": "notification"' in message or '"type":"notification"' in message:
                held.append(message)
                await release_frames.wait()
            ws.send(message)

        server_side.on_message(to_page)

    await page.route("**/notifications?limit=*", hold_list)
    await page.route_web_socket("**/ws?**", hold_notification_frames)
    await page.goto(server.base + "/")
    await page.evaluate(START, [token, {}])

    async def live() -> bool:
        return (await page.evaluate(SUMMARY))[-1]["status"] == "live"

    await wait_until(live, "the socket's snapshot (the list fetch is held)")
    insert_deal(database_url, "Acme", alice)
    (note_id,) = notification_ids(database_url, alice)
    await wait_until(lambda: len(held) == 1, "the notification frame, held on its way")

    # the list answer (with the new notification in it) first, then the frame
    release_list.set()

    async def list_handled() -> bool:
        return "/notifications" in await page.evaluate("() => window.answered")

    await wait_until(list_handled, "the client handling the list answer")
    release_frames.set()

    async def frame_handled() -> bool:
        return "notification" in await page.evaluate("() => window.frames")

    await wait_until(frame_handled, "the client handling the notification frame")
    assert await page.evaluate("() => window.announced") == [note_id], (
        "the live notification got no `notification` event"
    )
    assert (await page.evaluate(SUMMARY))[-1]["ids"] == [note_id]
