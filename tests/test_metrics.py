"""/metrics against a real server: the Prometheus text parses, and the
figures move with what really happened (sockets, deliveries, latency,
listener reconnects, PostgreSQL's NOTIFY queue)."""

from __future__ import annotations

import asyncio
import platform
import uuid

import aiohttp
import psycopg
from prometheus_client.parser import text_string_to_metric_families

import pgbell
from pgbell.http import keys
from tests.support import add_user, insert_deal, login, next_frame, wait_until


async def scrape(http: aiohttp.ClientSession, base: str, **headers: str) -> dict:
    """{(sample name, sorted labels): value}; the parser rejects bad text."""
    async with http.get(f"{base}/metrics", headers=headers) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await r.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"{name}{labels} not in /metrics"
    return samples[key]


async def test_metrics_follow_sockets_deliveries_and_latency(server, http, database_url):
    owner = add_user(database_url, "metered")
    listener = server.pgbell_app[keys.LISTENER]
    await wait_until(lambda: listener.connected, "the listener connected after start-up")
    before = await scrape(http, server.base)
    assert value(before, "pgbell_websocket_connections") == 0
    assert value(before, "pgbell_notifications_delivered_total") == 0
    assert value(before, "pgbell_listener_connected") == 1
    assert 0 <= value(before, "pgbell_notification_queue_usage") < 1

    token = await login(http, server.base, "metered")
    tabs = [await http.ws_connect(f"{server.ws_base}/ws?token={token}") for _ in range(2)]
    for ws in tabs:
        await next_frame(ws, "snapshot")
    await asyncio.to_thread(insert_deal, database_url, "Metered", owner)
    for ws in tabs:
        await next_frame(ws, "notification")

    after = await scrape(http, server.base)
    assert value(after, "pgbell_websocket_connections") == 2
    assert value(after, "pgbell_websocket_users") == 1
    # one notification, two sockets: two deliveries, two latency samples
    assert value(after, "pgbell_notifications_delivered_total") == 2
    assert value(after, "pgbell_delivery_latency_seconds_count") == 2
    assert value(after, "pgbell_delivery_latency_seconds_bucket", le="+Inf") == 2
    assert 0 < value(after, "pgbell_delivery_latency_seconds_sum") < 10
    assert value(after, "pgbell_frames_sent_total") == 2  # snapshots are not hub frames
    assert value(after, "pgbell_listener_notifies_total") >= 1
    assert value(after, "pgbell_feed_notifications_fetched_total") == 1
    assert (
        value(after, "pgbell_http_requests_total", method="POST", route="/auth/login", status="200")
        == 1
    )
    for ws in tabs:
        await ws.close()

    async def no_sockets() -> bool:
        return value(await scrape(http, server.base), "pgbell_websocket_connections") == 0

    await wait_until(no_sockets, "pgbell_websocket_connections back to 0 after closing")


def _listener_pid(db_url: str) -> int | None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'pgbell-listener'"
        ).fetchone()
        return row[0] if row else None


def _terminate(db_url: str, pid: int) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]


async def test_listener_reconnects_and_catches_up_what_it_missed(server, http, database_url):
    """DESIGN.md: NOTIFYs sent while the LISTEN connection is down are lost.
    pgbell notices the loss at once (not at the next 60 s probe of this
    test's settings), reconnects, and catches up from the table."""
    owner = add_user(database_url, "reconnected")
    token = await login(http, server.base, "reconnected")
    ws = await http.ws_connect(f"{server.ws_base}/ws?token={token}")
    await next_frame(ws, "snapshot")
    pid = await wait_until(lambda: _listener_pid(database_url), "the LISTEN connection exists")

    # Kill the LISTEN connection and commit a deal in the same breath: the
    # deal's NOTIFY may well reach nobody.
    await asyncio.to_thread(_terminate, database_url, pid)
    await asyncio.to_thread(insert_deal, database_url, "While away", owner)

    frame = await next_frame(ws, "notification", where="after the listener was killed")
    assert frame["notification"]["title"] == "New deal: While away"

    async def reconnected() -> bool:
        samples = await scrape(http, server.base)
        return (
            value(samples, "pgbell_listener_reconnects_total") == 1
            and value(samples, "pgbell_listener_connected") == 1
        )

    await wait_until(reconnected, "pgbell_listener_reconnects_total 1 and connected 1")
    new_pid = _listener_pid(database_url)
    assert new_pid is not None and new_pid != pid

    # and live delivery works on the new connection
    await asyncio.to_thread(insert_deal, database_url, "After", owner)
    frame = await next_frame(ws, "notification", where="on the new LISTEN connection")
    assert frame["notification"]["title"] == "New deal: After"


async def test_metrics_token_guards_the_scrape(start_server, http):
    srv = await start_server(PGBELL_METRICS_TOKEN="scrape-secret")
    url = f"{srv.base}/metrics"
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        async with http.get(url, headers=headers) as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == "unauthorized"
    samples = await scrape(http, srv.base, Authorization="Bearer scrape-secret")
    assert value(samples, "pgbell_listener_connected") in (0, 1)


async def test_login_and_deal_limits_are_counted(start_server, http, database_url):
    srv = await start_server(PGBELL_LOGIN_MAX_FAILURES="1", PGBELL_DEALS_PER_MINUTE="1")
    add_user(database_url, "ann")
    add_user(database_url, "bob")
    before = await scrape(http, srv.base)
    for name in ("pgbell_login_checks_pending", "pgbell_login_checks_refused_total"):
        assert value(before, name) == 0
    for _ in range(2):  # one failure spends the budget, the second is refused
        async with http.post(
            f"{srv.base}/auth/login", json={"username": "ann", "password": "wrong"}
        ) as r:
            await r.read()
    token = await login(http, srv.base, "bob")  # another username: its own budget
    auth = {"Authorization": f"Bearer {token}"}
    for _ in range(2):
        async with http.post(f"{srv.base}/deals", json={"title": "T", "amount": 1}, headers=auth):
            pass
    after = await scrape(http, srv.base)
    assert value(after, "pgbell_login_rate_limited_total") >= 1
    assert value(after, "pgbell_deals_rate_limited_total") == 1


async def test_process_build_pool_queue_and_per_route_latency(server, http):
    """prometheus_client's own collectors beside pgbell's: process_*, the
    build, the pool, the NOTIFY queue as a ratio (and under its old name),
    and request latency per route with labels that stay bounded whatever
    clients send."""
    for _ in range(2):
        async with http.get(f"{server.base}/openapi.json") as r:
            assert r.status == 200
    invented = f"/no/such/{uuid.uuid4().hex}"
    async with http.request("PROPFIND", f"{server.base}{invented}") as r:
        assert r.status == 404

    samples = await scrape(http, server.base)
    assert value(samples, "process_resident_memory_bytes") > 0
    assert value(samples, "process_start_time_seconds") > 0
    assert value(samples, "process_cpu_seconds_total") > 0
    assert value(samples, "process_open_fds") > 0
    assert (
        value(
            samples,
            "pgbell_build_info",
            version=pgbell.__version__,
            python=platform.python_version(),
            worker="1",
            workers="1",
        )
        == 1
    )
    assert value(samples, "pgbell_db_pool_connections") >= 1
    assert (
        0
        <= value(samples, "pgbell_db_pool_idle_connections")
        <= value(samples, "pgbell_db_pool_connections")
    )
    assert (
        value(samples, "pgbell_db_pool_max_connections")
        == server.pgbell_app[keys.SETTINGS].db_pool_max
    )
    ratio = value(samples, "pgbell_notification_queue_usage_ratio")
    assert 0 <= ratio < 1 and value(samples, "pgbell_notification_queue_usage") == ratio

    route = {"route": "/openapi.json", "method": "GET", "status_class": "2xx"}
    assert value(samples, "pgbell_http_request_duration_seconds_count", **route) == 2
    assert value(samples, "pgbell_http_request_duration_seconds_bucket", le="+Inf", **route) == 2
    assert 0 < value(samples, "pgbell_http_request_duration_seconds_sum", **route)
    labels = {v for (_, items) in samples for _, v in items}
    assert invented not in labels and "PROPFIND" not in labels, "a client's input became a label"
    unmatched = {"method": "other", "route": "unmatched", "status": "404"}
    assert value(samples, "pgbell_http_requests_total", **unmatched) == 1
