"""Typed application keys, declared in one place."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web

if TYPE_CHECKING:
    # None of these imports this module: keys stays a leaf of the import graph.
    from pgbell.bus.feed import Feed
    from pgbell.bus.hub import Hub
    from pgbell.bus.listener import Listener
    from pgbell.config import Settings
    from pgbell.http.snapshots import SnapshotBatcher
    from pgbell.http.stats import HttpStats
    from pgbell.http.throttle import LoginThrottle
    from pgbell.passwords import PasswordChecks
    from pgbell.schema import Verdict
    from pgbell.tokens import TokenVerifier

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
POOL: web.AppKey[asyncpg.Pool] = web.AppKey("pool")
HUB: web.AppKey[Hub] = web.AppKey("hub")
SNAPSHOTS: web.AppKey[SnapshotBatcher] = web.AppKey("snapshots")
FEED: web.AppKey[Feed] = web.AppKey("feed")
LISTENER: web.AppKey[Listener] = web.AppKey("listener")
HTTP_STATS: web.AppKey[HttpStats] = web.AppKey("http_stats")
LOGIN_THROTTLE: web.AppKey[LoginThrottle] = web.AppKey("login_throttle")
PASSWORD_CHECKS: web.AppKey[PasswordChecks] = web.AppKey("password_checks")
VERIFIER: web.AppKey[TokenVerifier] = web.AppKey("verifier")
SCHEMA: web.AppKey[Verdict] = web.AppKey("schema")
SOCKETS: web.AppKey[set[web.WebSocketResponse]] = web.AppKey("sockets")
# Set once the server is going away (SIGTERM, shutdown): /readyz answers 503.
DRAINING: web.AppKey[asyncio.Event] = web.AppKey("draining")
# (index, count) of a worker of `pgbell serve --workers N`; absent: (1, 1).
WORKER: web.AppKey[tuple[int, int]] = web.AppKey("worker")

# Per-request values, read by the access logger.
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)
USER_ID: web.RequestKey[str] = web.RequestKey("user_id", str)
