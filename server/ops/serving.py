"""One serving process: the app on its port, stopped gracefully by SIGTERM.

`pgbell serve --workers 1` is this alone. With more workers, each worker
process is this too, on sockets of its own bound with SO_REUSEPORT
(pgbell.ops.workers starts and stops them).
"""

from __future__ import annotations

import asyncio
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
    sockets: list[socket.socket]
    ready: Callable[[], None] = field(default=lambda: None)


def bind(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to every address of host:port with SO_REUSEPORT, not
    yet listening: the kernel spreads connections over the listening
    sockets of that port, one per worker, and sends none to a socket that
    is only bound. As asyncio's create_server does for a host name, every
    address it resolves to gets a socket; port 0 takes the port the first
    one gets. Raises OSError that says which address."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as e:
        raise OSError(f"cannot resolve {host!r}: {e.strerror}") from None
    sockets: list[socket.socket] = []
    seen = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            try:
                sock.bind(address)
            except OSError as e:
                raise OSError(f"cannot bind {address[0]} port {address[1]}: {e.strerror}") from None
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


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


def serve(settings: Settings, worker: Worker | None = None) -> None:
    """Serve until SIGTERM or SIGINT. A worker serves on its own sockets,
    logs its index on every line, and calls worker.ready once its database
    pool, schema check and listener are up (it listens right after)."""
    logs.setup(settings.log_level, settings.log_format, worker=worker and worker.index)
    app = create_app(settings)
    _drain_on_sigterm(app)
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
            print=lambda *a: None,
            shutdown_timeout=10.0,
        )
    except SchemaError as e:
        log.error("not serving: %s", e)
        raise SystemExit(f"pgbell: {e}") from None
