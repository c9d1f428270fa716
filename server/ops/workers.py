"""`pgbell serve --workers N`: a supervisor and N worker processes.

Each worker is a whole `pgbell serve` (pgbell.ops.serving): its own pool,
LISTEN connection and hub, and its own listening sockets on the same
host:port, bound with SO_REUSEPORT so that the kernel spreads new
connections over the workers. The supervisor holds no database connection
and serves nothing: it starts the workers, forwards SIGTERM and SIGINT to
each, restarts one that dies, and gives up when they cannot start.

A worker is `python -m pgbell serve --worker I/N --ready-fd FD`, so `ps`
names it. It runs in its own process group, so that Ctrl-C in a terminal
reaches the supervisor alone, which forwards it once; on Linux it is sent
SIGTERM if the supervisor dies, whatever killed it. Through the pipe FD the
worker says "ready" once its pool, schema check and listener are up, or why
it could not start; the pipe's end-of-file tells the supervisor that the
worker has exited.
"""

from __future__ import annotations

import ctypes
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

from pgbell.config import Settings
from pgbell.http import logs

log = logging.getLogger("pgbell.workers")

# A worker that exits before it is ready this many times in a row: give up.
START_ATTEMPTS = 3
# Before a restart: doubled for each early death in a row, up to the cap.
RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 30.0
# A worker that served this long starts over from RESTART_DELAY.
STABLE_SECONDS = 60.0
# After the drain, how long the workers may take to stop: requests get
# 10 s, the pool 10 s more. Past it they are killed and the exit is 1.
STOP_GRACE = 30.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class _Slot:
    """One worker index: the process now running it, or when to start one."""

    index: int
    process: subprocess.Popen[bytes] | None = None
    pipe: int = -1
    said: bytes = b""
    ready: bool = False
    started: float = 0.0
    start_failures: int = 0  # exits before ready, in a row
    crashes: int = 0  # exits after ready, each within STABLE_SECONDS of its start
    reason: str = ""  # what the last worker said when it could not start
    start_at: float = 0.0


def _status(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class Supervisor:
    def __init__(self, settings: Settings, env: dict[str, str], port: int) -> None:
        self.settings = settings
        self.env = env
        self.port = port
        self.slots = [_Slot(i) for i in range(1, settings.workers + 1)]
        self.selector = selectors.DefaultSelector()
        self.stopping = 0  # the first signal that asked to stop
        self.deadline = 0.0
        self.failure = ""  # why the supervisor gave up
        self.unclean = False  # a worker was killed or failed while stopping

    # -- starting ----------------------------------------------------------

    def _start(self, slot: _Slot) -> None:
        read, write = os.pipe()
        argv = [
            sys.executable,
            "-m",
            "pgbell",
            "serve",
            "--host",
            self.settings.host,
            "--port",
            str(self.port),
            "--worker",
            f"{slot.index}/{len(self.slots)}",
            "--ready-fd",
            str(write),
        ]
        try:
            slot.process = subprocess.Popen(
                argv, env=self.env, pass_fds=(write,), stdin=subprocess.DEVNULL, process_group=0
            )
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        os.set_blocking(read, False)
        slot.pipe, slot.said, slot.ready, slot.reason = read, b"", False, ""
        slot.started = time.monotonic()
        self.selector.register(read, selectors.EVENT_READ, slot)
        log.info(
            "worker %d started (pid %d)",
            slot.index,
            slot.process.pid,
            extra={"worker": slot.index, "pid": slot.process.pid},
        )

    def _read(self, slot: _Slot) -> None:
        data = os.read(slot.pipe, 4096)
        if not data:
            self._exited(slot)
            return
        slot.said += data
        *lines, slot.said = slot.said.split(b"\n")
        for line in lines:
            word, _, rest = line.decode(errors="replace").partition(" ")
            if word == "ready" and not slot.ready:
                slot.ready, slot.start_failures = True, 0
                if all(s.ready for s in self.slots):
                    log.info("all %d workers ready", len(self.slots))
            elif word == "failed":
                slot.reason = rest

    def _exited(self, slot: _Slot) -> None:
        assert slot.process is not None
        self.selector.unregister(slot.pipe)
        os.close(slot.pipe)
        try:
            # the pipe closes as the process exits: it is gone or going
            code = slot.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            slot.process.kill()
            code = slot.process.wait()
        pid, slot.process = slot.process.pid, None
        fields = {"worker": slot.index, "pid": pid, "status": code}
        if self.stopping:
            if code not in (0, -self.stopping):
                self.unclean = True
                log.warning("worker %d stopped with %s", slot.index, _status(code), extra=fields)
            else:
                log.info("worker %d stopped", slot.index, extra=fields)
            return
        now = time.monotonic()
        if not slot.ready:
            slot.start_failures += 1
            if slot.start_failures >= START_ATTEMPTS:
                self.failure = (
                    f"worker {slot.index} exited before it was ready {START_ATTEMPTS} times"
                    f" in a row ({_status(code)}): {slot.reason or 'see its log above'}"
                )
                log.error("giving up: %s", self.failure, extra=fields)
                self.stop(signal.SIGTERM, "giving up")
                return
            failures = slot.start_failures
        else:
            slot.crashes = slot.crashes + 1 if now - slot.started < STABLE_SECONDS else 1
            failures = slot.crashes
        delay = min(RESTART_DELAY * 2 ** (failures - 1), MAX_RESTART_DELAY)
        slot.start_at = now + delay
        log.warning(
            "worker %d (pid %d) exited with %s%s; restarting it in %g s",
            slot.index,
            pid,
            _status(code),
            "" if slot.ready else f" before it was ready: {slot.reason or 'see its log'}",
            delay,
            extra=fields,
        )

    # -- stopping ----------------------------------------------------------

    def stop(self, signum: int, why: str = "") -> None:
        """Forward the signal to every worker: the first SIGTERM starts their
        drain, a second one cuts it short, as for a single process."""
        now = time.monotonic()
        if not self.stopping:
            self.stopping = signum
            drain = self.settings.shutdown_drain if signum == signal.SIGTERM else 0.0
            self.deadline = now + drain + STOP_GRACE
            running = sum(s.process is not None for s in self.slots)
            why = why or signal.Signals(signum).name
            log.info("%s: stopping %d running workers", why, running)
        else:
            self.deadline = min(self.deadline, now + STOP_GRACE)
        for slot in self.slots:
            if slot.process is not None:
                slot.process.send_signal(signum)

    def _kill_the_rest(self) -> None:
        for slot in self.slots:
            if slot.process is not None:
                log.error(
                    "worker %d did not stop in time; killing it",
                    slot.index,
                    extra={"worker": slot.index, "pid": slot.process.pid},
                )
                slot.process.kill()
                slot.process.wait()
                self.selector.unregister(slot.pipe)
                os.close(slot.pipe)
                slot.process = None
        self.unclean = True

    # -- the loop ----------------------------------------------------------

    def run(self) -> int:
        wake_read, wake_write = socket.socketpair()
        wake_read.setblocking(False)
        wake_write.setblocking(False)
        # Signals only write their number to the socket; the loop acts on them.
        signal.set_wakeup_fd(wake_write.fileno(), warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: None)
        self.selector.register(wake_read, selectors.EVENT_READ, None)
        while True:
            now = time.monotonic()
            if self.stopping:
                if all(s.process is None for s in self.slots):
                    break
                if now >= self.deadline:
                    self._kill_the_rest()
                    break
                timeout: float | None = self.deadline - now
            else:
                for slot in self.slots:
                    if slot.process is None and slot.start_at <= now:
                        self._start(slot)
                waiting = [s.start_at - now for s in self.slots if s.process is None]
                timeout = max(0.0, min(waiting)) if waiting else None
            for key, _ in self.selector.select(timeout):
                if key.data is None:
                    for signum in wake_read.recv(64):
                        if signum in (signal.SIGTERM, signal.SIGINT):
                            self.stop(signum)
                elif key.data.process is not None:
                    self._read(key.data)
        if self.failure:
            raise SystemExit(f"pgbell: {self.failure}")
        if self.unclean:
            log.error("not every worker stopped cleanly")
            return 1
        log.info("every worker stopped")
        return 0


def supervise(settings: Settings, env: dict[str, str]) -> int:
    """Run settings.workers workers until SIGTERM or SIGINT; 0 once every
    one has stopped. The address is bound here first, and kept bound (not
    listening) while the supervisor runs: an address that cannot be bound
    stops the start before any worker, and port 0 becomes one port for all."""
    logs.setup(settings.log_level, settings.log_format)
    try:
        held = bind(settings.host, settings.port)
    except OSError as e:
        raise SystemExit(f"pgbell: {e}") from None
    port = held[0].getsockname()[1]
    print(
        f"pgbell: serving on http://{settings.host}:{port} with {settings.workers} workers",
        flush=True,
    )
    try:
        return Supervisor(settings, env, port).run()
    finally:
        for sock in held:
            sock.close()


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


def _stop_with_the_supervisor() -> None:
    """Linux: this process gets SIGTERM when its parent dies, even by
    SIGKILL, and stops as it would on the supervisor's own SIGTERM."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
    except (OSError, AttributeError):  # not Linux
        pass


def work(settings: Settings, index: int, count: int, ready_fd: int) -> int:
    """One worker, as the supervisor starts it: says on ready_fd when it is
    ready, or why it could not start."""
    # the app, aiohttp, asyncpg: in the workers, never in the supervisor
    from pgbell.ops import serving

    _stop_with_the_supervisor()
    os.set_inheritable(ready_fd, False)

    def say(line: str) -> None:
        try:
            os.write(ready_fd, line.encode() + b"\n")
        except BrokenPipeError:
            # the supervisor died before this worker could ask to follow it
            log.error("the supervisor is gone; stopping")
            os.kill(os.getpid(), signal.SIGTERM)

    try:
        try:
            sockets = bind(settings.host, settings.port)
        except OSError as e:
            raise SystemExit(f"pgbell: {e}") from None
        serving.serve(settings, serving.Worker(index, count, sockets, lambda: say("ready")))
    except SystemExit as e:
        if e.code not in (None, 0):
            say("failed " + " ".join(str(e.code).removeprefix("pgbell: ").split())[:500])
        raise
    except Exception as e:
        say(f"failed {type(e).__name__}: " + " ".join(str(e).split())[:500])
        raise
    return 0
