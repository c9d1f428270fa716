"""GET /metrics: the Prometheus text format (version 0.0.4), by prometheus_client.

The counters live where the work happens (the hub, the feed, the listener,
the HTTP middleware) as plain numbers: the hot path never takes a lock or
calls into a metrics library. At scrape time a custom collector reads them
into metric families, next to prometheus_client's process_* and python_info
collectors, plus one database read: pg_notification_queue_usage(), the fill
level of PostgreSQL's NOTIFY queue, which stalls every writer when it is full.

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
import platform
from collections.abc import Iterator

import asyncpg
from aiohttp import web
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest

from pgbell import __version__
from pgbell.bus.histogram import Histogram
from pgbell.demo import deals
from pgbell.http import keys
from pgbell.http.errors import ApiError
from pgbell.sql import Q

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
QUEUE_USAGE_HELP = "pg_notification_queue_usage(): fraction of PostgreSQL's NOTIFY queue in use."


def _gauge(name: str, help_: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_, value=value)


def _counter(name: str, help_: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, help_, value=value)


def _histogram(name: str, help_: str, hist: Histogram) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, help_, buckets=hist.cumulative(), sum_value=hist.sum)


class PgbellCollector:
    """pgbell's own metrics, read from the app's plain counters at each scrape.

    `queue_usage` is read from the database before the scrape (a collector
    cannot await); None leaves the queue gauges out."""

    def __init__(self, app: web.Application, queue_usage: float | None) -> None:
        self._app = app
        self._queue_usage = queue_usage

    def collect(self) -> Iterator[Metric]:
        yield from self._build()
        yield from self._sockets()
        yield from self._bus()
        yield from self._logins()
        yield from self._database()
        yield from self._http()

    def _build(self) -> Iterator[Metric]:
        worker, workers = self._app.get(keys.WORKER, (1, 1))
        yield InfoMetricFamily(
            "pgbell_build",
            "The running pgbell: its version, its Python's, and which of the"
            " `pgbell serve --workers` processes answered this scrape.",
            value={
                "version": __version__,
                "python": platform.python_version(),
                "worker": str(worker),
                "workers": str(workers),
            },
        )

    def _sockets(self) -> Iterator[Metric]:
        hub = self._app[keys.HUB]
        yield _gauge(
            "pgbell_websocket_connections", "Open authenticated WebSockets.", hub.socket_count()
        )
        yield _gauge(
            "pgbell_websocket_users", "Users with at least one open socket.", len(hub.user_ids())
        )
        yield _counter(
            "pgbell_frames_sent_total",
            "Frames written to WebSockets by the hub (every type).",
            hub.stats.frames_sent,
        )
        yield _counter(
            "pgbell_notifications_delivered_total",
            "Notification frames written to WebSockets (one per socket).",
            hub.stats.notifications_delivered,
        )
        yield _histogram(
            "pgbell_delivery_latency_seconds",
            "From a notification's created_at (its writer's transaction time) to its frame"
            " being written to a socket; for a short transaction, commit to send.",
            hub.stats.latency,
        )
        yield _counter(
            "pgbell_slow_consumers_closed_total",
            "Sockets closed (1013) because their send queue overflowed.",
            hub.stats.slow_consumers_closed,
        )

    def _bus(self) -> Iterator[Metric]:
        listener, feed = self._app[keys.LISTENER], self._app[keys.FEED]
        yield _gauge(
            "pgbell_listener_connected",
            "1 while the LISTEN connection is up.",
            int(listener.connected),
        )
        yield _counter(
            "pgbell_listener_reconnects_total",
            "Times the LISTEN connection was re-established after a loss.",
            listener.reconnects,
        )
        yield _counter(
            "pgbell_listener_notifies_total",
            "NOTIFY messages received on the pgbell channel.",
            listener.notifies_received,
        )
        yield _counter(
            "pgbell_listener_wakeups_total",
            "Looks at the table (awake polling, NOTIFY, reconnect catch-up or safety poll).",
            listener.wakeups,
        )
        yield _gauge(
            "pgbell_listener_asleep",
            "1 while the server is asleep (writers send NOTIFY), 0 while it polls.",
            int(listener.asleep),
        )
        yield _counter(
            "pgbell_listener_sleeps_total",
            "Times the server fell asleep after PGBELL_WAKE_IDLE seconds without rows.",
            listener.sleeps,
        )
        yield _counter(
            "pgbell_feed_notifications_fetched_total",
            "Notification rows fetched for connected users.",
            feed.stats.notifications_fetched,
        )
        yield _counter(
            "pgbell_feed_state_changes_fetched_total",
            "Read/archive events fetched for connected users.",
            feed.stats.state_changes_fetched,
        )

    def _logins(self) -> Iterator[Metric]:
        app = self._app
        yield _counter(
            "pgbell_login_rate_limited_total",
            "Logins answered 429 because a failure budget was spent"
            " (PGBELL_LOGIN_MAX_FAILURES, PGBELL_LOGIN_MAX_FAILURES_PER_ADDRESS).",
            app[keys.LOGIN_THROTTLE].rejected,
        )
        checks = app[keys.PASSWORD_CHECKS]
        yield _gauge(
            "pgbell_login_checks_pending",
            "Password checks waiting or running in the login threads (PGBELL_LOGIN_MAX_PENDING).",
            checks.pending,
        )
        yield _counter(
            "pgbell_login_checks_refused_total",
            "Logins answered 429 at once because PGBELL_LOGIN_MAX_PENDING checks were under way.",
            checks.refused,
        )
        yield _counter(
            "pgbell_deals_rate_limited_total",
            "Demo deal creations answered 429 (PGBELL_DEALS_PER_MINUTE).",
            deals.creation_limit(app).rejected,
        )
        jwks = app[keys.VERIFIER].stats
        yield _counter(
            "pgbell_jwks_fetches_total",
            "JWKS fetches begun (PGBELL_JWT_JWKS_URL): first use, unknown kid or stale keys.",
            jwks.jwks_fetches,
        )
        yield _counter(
            "pgbell_jwks_failures_total",
            "JWKS fetches that failed; the cached keys stayed in use.",
            jwks.jwks_failures,
        )

    def _database(self) -> Iterator[Metric]:
        pool = self._app[keys.POOL]
        yield _gauge(
            "pgbell_db_pool_connections",
            "Connections the pool holds open, busy or idle (the LISTEN connection is extra).",
            pool.get_size(),
        )
        yield _gauge(
            "pgbell_db_pool_idle_connections",
            "Open pool connections waiting for a request.",
            pool.get_idle_size(),
        )
        yield _gauge(
            "pgbell_db_pool_max_connections",
            "The most connections the pool opens (PGBELL_DB_POOL_MAX).",
            pool.get_max_size(),
        )
        if self._queue_usage is not None:
            yield _gauge(
                "pgbell_notification_queue_usage_ratio", QUEUE_USAGE_HELP, self._queue_usage
            )
            # the name of earlier releases, for the dashboards and alerts built on it
            yield _gauge(
                "pgbell_notification_queue_usage",
                QUEUE_USAGE_HELP + " Same as pgbell_notification_queue_usage_ratio.",
                self._queue_usage,
            )

    def _http(self) -> Iterator[Metric]:
        http = self._app[keys.HTTP_STATS]
        requests = CounterMetricFamily(
            "pgbell_http_requests_total",
            "REST requests by method, route pattern and status.",
            labels=["method", "route", "status"],
        )
        for (method, route, status), n in sorted(http.requests.items()):
            requests.add_metric([method, route, str(status)], n)
        yield requests
        durations = HistogramMetricFamily(
            "pgbell_http_request_duration_seconds",
            "REST request durations by route pattern, method and status class (2xx...).",
            labels=["route", "method", "status_class"],
        )
        for labels, hist in sorted(http.durations.items()):
            durations.add_metric(list(labels), hist.cumulative(), hist.sum)
        yield durations


async def _queue_usage(pool: asyncpg.Pool) -> float | None:
    try:
        return await pool.fetchval(Q.notification_queue_usage, timeout=2)
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


def registry(app: web.Application, queue_usage: float | None) -> CollectorRegistry:
    """A registry for one scrape: nothing is shared between scrapes, or
    between the apps of one process (the tests run many)."""
    reg = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=reg)  # process_cpu_seconds_total, process_open_fds...
    PlatformCollector(registry=reg)  # python_info
    reg.register(PgbellCollector(app, queue_usage))
    return reg


async def metrics(request: web.Request) -> web.Response:
    _authorize(request)
    usage = await _queue_usage(request.app[keys.POOL])
    body = generate_latest(registry(request.app, usage))
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
