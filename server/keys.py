"""Typed application keys, declared in one place."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web

if TYPE_CHECKING:
    from server.config import Settings
    from server.feed import Feed
    from server.hub import Hub
    from server.listener import Listener
    from server.metrics import HttpStats
    from server.throttle import LoginThrottle

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
POOL: web.AppKey[asyncpg.Pool] = web.AppKey("pool")
HUB: web.AppKey[Hub] = web.AppKey("hub")
FEED: web.AppKey[Feed] = web.AppKey("feed")
LISTENER: web.AppKey[Listener] = web.AppKey("listener")
HTTP_STATS: web.AppKey[HttpStats] = web.AppKey("http_stats")
LOGIN_THROTTLE: web.AppKey[LoginThrottle] = web.AppKey("login_throttle")
SOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("sockets")

# Per-request values, read by the access logger.
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)
USER_ID: web.RequestKey[int] = web.RequestKey("user_id", int)
