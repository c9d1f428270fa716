"""GET /metrics: the Prometheus text format (version 0.0.4), no dependency.

The counters live where the work happens (the hub, the feed, the listener)
as plain numbers; this module only reads and renders them, plus one
database read at scrape time: pg_notification_queue_usage(), the fill level
of PostgreSQL's NOTIFY queue, which stalls every writer when it is full.

If PGBELL_METRICS_TOKEN is set, a scrape must carry it as a bearer token.
If it is not, /metrics is open only on a server bound to loopback: bound to
any other address (0.0.0.0, a public one, a host name) it answers 403, and
the server says so in its log at start. The figures tell an outsider how
many users are online and when, and /metrics is not worth a way in.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Iterable

import asyncpg
from aiohttp import web

from pgbell.bus.histogram import Histogram, format_number
from pgbell.demo import deals
from pgbell.http import keys
from pgbell.http.errors import ApiError

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(
        self, name: str, kind: str, help_: str, samples: Iterable[tuple[dict, float]]
    ) -> None:
        self.lines.append(f"# HELP {name} {help_}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(labels)} {format_number(value)}")

    def single(self, name: str, kind: str, help_: str, value: float) -> None:
        self.metric(name, kind, help_, [({}, value)])

    def histogram(self, name: str, help_: str, hist: Histogram) -> None:
        self.lines.append(f"# HELP {name} {help_}")
        self.lines.append(f"# TYPE {name} histogram")
        for bound, n in hist.cumulative():
            self.lines.append(f'{name}_bucket{{le="{bound}"}} {n}')
        self.lines.append(f"{name}_sum {format_number(hist.sum)}")
        self.lines.append(f"{name}_count {hist.count}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _labels(labels: dict) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
    return "{" + inner + "}"


async def _queue_usage(pool: asyncpg.Pool) -> float | None:
    try:
        return await pool.fetchval("SELECT pg_notification_queue_usage()", timeout=2)
    except Exception as e:  # an unreachable database must not fail the scrape
        log.warning("metrics: reading pg_notification_queue_usage failed", extra={"error": repr(e)})
        return None


def bound_to_loopback(host: str) -> bool:
    """True for a bind address only this machine can reach."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name may resolve to anything


CLOSED = (
    "/metrics is closed: this server is bound to {host}, beyond loopback;"
    " set PGBELL_METRICS_TOKEN and scrape with Authorization: Bearer <that token>"
)


async def warn_if_closed(app: web.Application) -> None:
    """At start: tell the operator why a scrape will get 403 (on_startup)."""
    settings = app[keys.SETTINGS]
    if not settings.metrics_token and not bound_to_loopback(settings.host):
        log.warning(CLOSED.format(host=settings.host))


def _authorize(request: web.Request) -> None:
    settings = request.app[keys.SETTINGS]
    expected = settings.metrics_token
    if not expected:
        if bound_to_loopback(settings.host):
            return
        raise ApiError(403, "forbidden", CLOSED.format(host=settings.host))
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), expected):
        raise ApiError(401, "unauthorized", "this server's /metrics needs its metrics token")


async def metrics(request: web.Request) -> web.Response:
    _authorize(request)
    app = request.app
    hub, feed, listener = app[keys.HUB], app[keys.FEED], app[keys.LISTENER]
    http = app[keys.HTTP_STATS]
    w = _Writer()
    w.single(
        "pgbell_websocket_connections",
        "gauge",
        "Open authenticated WebSockets.",
        hub.socket_count(),
    )
    w.single(
        "pgbell_websocket_users",
        "gauge",
        "Users with at least one open socket.",
        len(hub.user_ids()),
    )
    w.single(
        "pgbell_frames_sent_total",
        "counter",
        "Frames written to WebSockets by the hub (every type).",
        hub.stats.frames_sent,
    )
    w.single(
        "pgbell_notifications_delivered_total",
        "counter",
        "Notification frames written to WebSockets (one per socket).",
        hub.stats.notifications_delivered,
    )
    w.histogram(
        "pgbell_delivery_latency_seconds",
        "From a notification's created_at (its writer's transaction time) to its frame"
        " being written to a socket; for a short transaction, commit to send.",
        hub.stats.latency,
    )
    w.single(
        "pgbell_slow_consumers_closed_total",
        "counter",
        "Sockets closed (1013) because their send queue overflowed.",
        hub.stats.slow_consumers_closed,
    )
    w.single(
        "pgbell_listener_connected",
        "gauge",
        "1 while the LISTEN connection is up.",
        int(listener.connected),
    )
    w.single(
        "pgbell_listener_reconnects_total",
        "counter",
        "Times the LISTEN connection was re-established after a loss.",
        listener.reconnects,
    )
    w.single(
        "pgbell_listener_notifies_total",
        "counter",
        "NOTIFY messages received on the pgbell channel.",
        listener.notifies_received,
    )
    w.single(
        "pgbell_listener_wakeups_total",
        "counter",
        "Fetches run (NOTIFY, reconnect catch-up or safety poll).",
        listener.wakeups,
    )
    w.single(
        "pgbell_feed_notifications_fetched_total",
        "counter",
        "Notification rows fetched for connected users.",
        feed.stats.notifications_fetched,
    )
    w.single(
        "pgbell_feed_state_changes_fetched_total",
        "counter",
        "Read/archive events fetched for connected users.",
        feed.stats.state_changes_fetched,
    )
    w.single(
        "pgbell_login_rate_limited_total",
        "counter",
        "Logins answered 429 because a failure budget was spent"
        " (PGBELL_LOGIN_MAX_FAILURES, PGBELL_LOGIN_MAX_FAILURES_PER_ADDRESS).",
        app[keys.LOGIN_THROTTLE].rejected,
    )
    checks = app[keys.PASSWORD_CHECKS]
    w.single(
        "pgbell_login_checks_pending",
        "gauge",
        "Password checks waiting or running in the login threads (PGBELL_LOGIN_MAX_PENDING).",
        checks.pending,
    )
    w.single(
        "pgbell_login_checks_refused_total",
        "counter",
        "Logins answered 429 at once because PGBELL_LOGIN_MAX_PENDING checks were under way.",
        checks.refused,
    )
    w.single(
        "pgbell_deals_rate_limited_total",
        "counter",
        "Demo deal creations answered 429 (PGBELL_DEALS_PER_MINUTE).",
        deals.creation_limit(app).rejected,
    )
    jwks = app[keys.VERIFIER].stats
    w.single(
        "pgbell_jwks_fetches_total",
        "counter",
        "JWKS fetches begun (PGBELL_JWT_JWKS_URL): first use, unknown kid or stale keys.",
        jwks.jwks_fetches,
    )
    w.single(
        "pgbell_jwks_failures_total",
        "counter",
        "JWKS fetches that failed; the cached keys stayed in use.",
        jwks.jwks_failures,
    )
    usage = await _queue_usage(app[keys.POOL])
    if usage is not None:
        w.single(
            "pgbell_notification_queue_usage",
            "gauge",
            "pg_notification_queue_usage(): fraction of PostgreSQL's NOTIFY queue in use.",
            usage,
        )
    w.metric(
        "pgbell_http_requests_total",
        "counter",
        "REST requests by method, route pattern and status.",
        [
            ({"method": m, "route": r, "status": s}, n)
            for (m, r, s), n in sorted(http.requests.items())
        ],
    )
    w.histogram("pgbell_http_request_duration_seconds", "REST request durations.", http.duration)
    return web.Response(body=w.text().encode(), headers={"Content-Type": CONTENT_TYPE})
