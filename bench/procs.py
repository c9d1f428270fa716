"""Server processes the benchmark starts, and always stops.

Each server runs in its own session (process group) so that a Ctrl-C in the
terminal reaches only the benchmark, which then stops its children in
order: SIGTERM, a bounded wait, SIGKILL for the whole group.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from pathlib import Path

import aiohttp


def free_port() -> int:
    """A port nobody listens on right now (loopback only)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """One server subprocess whose output goes to a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path, log: Path):
        self.name = name
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.log_path = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def wait_healthy(self, base_url: str, timeout: float) -> None:
        """Poll GET /healthz until 200; raise with the log's tail if it never comes."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        client_timeout = aiohttp.ClientTimeout(total=3)
        async with aiohttp.ClientSession(timeout=client_timeout) as http:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {self.proc.returncode} while starting;"
                        f" log {self.log_path}:\n{self.tail()}"
                    )
                try:
                    async with http.get(f"{base_url}/healthz") as r:
                        if r.status == 200:
                            return
                        last = f"HTTP {r.status}"
                except (aiohttp.ClientError, TimeoutError, OSError) as e:
                    last = type(e).__name__
                await asyncio.sleep(0.25)
        raise RuntimeError(
            f"{self.name} not healthy after {timeout:.0f} s ({last}); log {self.log_path}:\n"
            f"{self.tail()}"
        )

    async def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM the group, wait at most `grace` seconds, then SIGKILL it."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return None if proc is None else proc.returncode
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            return await asyncio.wait_for(proc.wait(), timeout=grace)
        except TimeoutError:
            _signal_group(proc.pid, signal.SIGKILL)
            return await asyncio.wait_for(proc.wait(), timeout=5)

    def kill_now(self) -> None:
        """Last resort from synchronous code (the loop may already be gone)."""
        if self.proc is not None and self.proc.returncode is None:
            _signal_group(self.proc.pid, signal.SIGKILL)


def _signal_group(pid: int, sig: int) -> None:
    # start_new_session made pid the group leader: children (run.sh execs
    # Daphne, but a wrapper may not) go with it
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
