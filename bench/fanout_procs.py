"""What bench/fanout.py drives and reads besides the server: the client
processes (bench/fanout_clients.py, one JSON line per command and answer),
a process's resident memory, and the kernel's count of dropped SYNs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

CLIENT = Path(__file__).resolve().parent / "fanout_clients.py"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def listen_drops() -> int:
    """SYNs dropped because a listen queue was full, machine-wide (TcpExt
    ListenDrops): a client whose SYN is dropped retries after 1, 3, 7, 15 s."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names.startswith("TcpExt:"):
            row = dict(zip(names.split()[1:], values.split()[1:], strict=True))
            return int(row.get("ListenDrops", 0))
    return 0


class Clients:
    """The client processes: each holds a share of the sockets (fanout_clients.py)."""

    def __init__(self, n: int, logs: Path) -> None:
        self.n = n
        self.logs = logs
        self.procs: list[asyncio.subprocess.Process] = []

    async def _ask(self, proc: asyncio.subprocess.Process, msg: dict | None) -> dict:
        if msg is not None:
            proc.stdin.write((json.dumps(msg) + "\n").encode())
            await proc.stdin.drain()
        line = await proc.stdout.readline()
        if not line:
            raise RuntimeError(f"a client process exited ({proc.returncode}); see {self.logs}")
        return json.loads(line)

    async def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        for i in range(self.n):
            with (self.logs / f"fanout-client-{i}.log").open("wb") as err:
                self.procs.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable, str(CLIENT),
                        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                        stderr=err, limit=2**26, start_new_session=True,
                    )
                )  # fmt: skip
        await asyncio.gather(*(self._ask(p, None) for p in self.procs))  # {"ready": true}

    async def connect(self, url: str, sockets: list[list[str]], inflight: int) -> list[dict]:
        plans = [
            {
                "url": url,
                "sockets": sockets[i :: self.n],
                # its own source address: 127.0.0.x each has its own ephemeral ports
                "local_host": f"127.0.0.{1 + i}",
                "inflight": max(1, inflight // self.n),
            }
            for i in range(self.n)
        ]
        return await asyncio.gather(
            *(self._ask(p, m) for p, m in zip(self.procs, plans, strict=True))
        )

    async def ask_all(self, cmd: dict) -> list[dict]:
        return await asyncio.gather(*(self._ask(p, cmd) for p in self.procs))

    async def stop(self) -> None:
        for p in self.procs:
            if p.returncode is None:
                try:
                    p.stdin.write(b'{"cmd": "close"}\n')
                    await p.stdin.drain()
                except (ConnectionError, RuntimeError):
                    pass
        for p in self.procs:
            try:
                await asyncio.wait_for(p.wait(), 30)
            except TimeoutError:
                os.killpg(p.pid, signal.SIGKILL)
                await p.wait()
        self.procs = []
