"""One serving process: the app on its port, stopped gracefully by SIGTERM.

`pgbell serve --workers 1` is this alone. With more workers, each worker
process is this too, on sockets of its own bound with SO_REUSEPORT
(pgbell.ops.workers starts and stops them).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.web_runner import GracefulExit

from pgbell.config import Settings
from pgbell.http import keys, logs
from pgbell.http.app import create_app
from pgbell.schema import SchemaError

log = logging.getLogger("pgbell")


@dataclass
class Worker:
    """What a worker process adds to a plain `serve`: who it is, the sockets
    it bound, and whom to tell once it is ready to accept connections."""

    index: int  # 1 to count
    count: int
    sockets: list[socket.socket]  # bound by pgbell.ops.workers.bind
    ready: Callable[[], None] = field(default=lambda: None)


def _drain_on_sigterm(app: web.Application) -> None:
    """SIGTERM turns /readyz to 503 at once and stops the server (close the
    listening socket, close WebSockets 1001, finish requests) only
    PGBELL_SHUTDOWN_DRAIN seconds later, so that a load balancer probing
    /readyz stops sending clients first. A second SIGTERM stops it at once;
    one more while it stops changes nothing (raised in the middle of the
    shutdown, it would cut it short and exit 1)."""
    stopping = False

    def stop() -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise GracefulExit()  # what aiohttp's own SIGTERM handler raises

    async def install(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        seconds = app[keys.SETTINGS].shutdown_drain

        def drain() -> None:
            if app[keys.DRAINING].is_set():
                stop()
                return
            app[keys.DRAINING].set()
            log.info("SIGTERM: /readyz answers 503; stopping in %g s", seconds)
            loop.call_later(seconds, stop)

        # replaces the handler aiohttp installed before the app started
        loop.add_signal_handler(signal.SIGTERM, drain)

    app.on_startup.append(install)


# The garbage collector's thresholds once the server runs. Python's default
# (700 new container objects between young collections) makes a broadcast to
# 10,000 sockets, or 10,000 connects, trigger hundreds of collections that
# walk the sockets' long-lived objects: measured with bench/fanout.py,
# connects cost 0.45 ms of CPU with it and 0.28 ms without, and a broadcast
# to 10,000 compressing sockets 1.03 s against 0.38 s. Cyclic garbage is
# still collected, only in larger batches.
GC_THRESHOLDS = (50_000, 20, 10)


async def _tune_gc(app: web.Application) -> None:
    """Once started: what start-up made is frozen (full collections skip
    it), and young collections run every GC_THRESHOLDS[0] allocations."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


# Connections the kernel queues before the server accepts them. aiohttp's
# default, 128, overflows when thousands of clients reconnect at once after
# a restart: the kernel drops their SYNs and they wait out TCP's 1, 3, 7 s
# retransmissions. The kernel caps it at net.core.somaxconn (4096 by default).
LISTEN_BACKLOG = 4096


def serve(settings: Settings, worker: Worker | None = None) -> None:
    """Serve until SIGTERM or SIGINT. A worker serves on its own sockets,
    logs its index on every line, and calls worker.ready once its database
    pool, schema check and listener are up (it listens right after)."""
    logs.setup(settings.log_level, settings.log_format, worker=worker and worker.index)
    app = create_app(settings)
    _drain_on_sigterm(app)
    app.on_startup.append(_tune_gc)
    where: dict[str, object] = {"host": settings.host, "port": settings.port}
    if worker is not None:
        app[keys.WORKER] = (worker.index, worker.count)
        where = {"sock": worker.sockets}

        async def ready(app: web.Application) -> None:
            worker.ready()

        app.on_startup.append(ready)
    try:
        web.run_app(
            app,
            **where,  # type: ignore[arg-type]
            access_log_class=logs.AccessLogger,
            backlog=LISTEN_BACKLOG,
            print=lambda *a: None,
            shutdown_timeout=10.0,
        )
    except SchemaError as e:
        log.error("not serving: %s", e)
        raise SystemExit(f"pgbell: {e}") from None
