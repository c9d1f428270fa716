"""The recipients' sockets of the writers' benchmark (bench/writers_cost.py),
held in a process of their own so that reading frames does not share the
server's event loop (it still shares the machine's two cores, as browsers
beside a server would not: that is part of "all-in").

One WebSocket per recipient. A frame is counted, not parsed: the count of
`notification` frames per recipient is compared with the rows committed
for that recipient.

Run as a script it is the child: it says {"ready": true}, reads its plan
{"url", "sockets": [[user_id, token], ...]}, opens every socket, waits for
each one's snapshot and answers {"connected", "errors"}; then answers each
{"cmd": "counts"} with {"counts": {user_id: frames so far}, "closed": n}
and stops on {"cmd": "close"}. Imported, `Sockets` starts and drives it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from pathlib import Path

import aiohttp

NOTIFICATION_MARK = '"type":"notification"'
SNAPSHOT_MARK = '"type":"snapshot"'
CONNECT_TIMEOUT = 30.0


class Sockets:
    """The parent's handle on the child process."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def _line(self, msg: dict | None, timeout: float) -> dict:
        assert self.proc is not None and self.proc.stdin is not None
        if msg is not None:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())
            await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            code = self.proc.returncode
            raise RuntimeError(f"the socket process exited ({code}); see {self.log}")
        return json.loads(line)

    async def open(self, url: str, sockets: list[list[str]]) -> None:
        """Start the child and connect every socket; raise unless all are open."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, __file__,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=err, limit=2**24, start_new_session=True,
            )  # fmt: skip
        await self._line(None, 30)
        got = await self._line({"url": url, "sockets": sockets}, CONNECT_TIMEOUT + 30)
        if got["connected"] != len(sockets):
            raise RuntimeError(
                f"{got['connected']} of {len(sockets)} sockets connected: {got['errors']}"
            )

    async def counts(self) -> tuple[Counter[str], int]:
        """Notification frames received so far per recipient, and sockets closed."""
        got = await self._line({"cmd": "counts"}, 30)
        return Counter(got["counts"]), got["closed"]

    async def close(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        try:
            await self._line({"cmd": "close"}, 15)
            await asyncio.wait_for(proc.wait(), 15)
        except (TimeoutError, RuntimeError, ConnectionError):
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


async def _hold(session: aiohttp.ClientSession, url: str, user: str, token: str, state) -> None:
    counts, errors, opened = state
    try:
        ws = await session.ws_connect(f"{url}?token={token}", timeout=CONNECT_TIMEOUT)
        first = await asyncio.wait_for(ws.receive(), CONNECT_TIMEOUT)
    except (aiohttp.ClientError, OSError, TimeoutError) as e:
        errors[type(e).__name__] += 1
        opened.set_result(False)
        return
    if first.type != aiohttp.WSMsgType.TEXT or SNAPSHOT_MARK not in first.data:
        errors[f"first frame {first.type.name}"] += 1
        opened.set_result(False)
        await ws.close()
        return
    opened.set_result(True)
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT and NOTIFICATION_MARK in msg.data:
            counts[user] += 1


async def _child() -> None:
    print(json.dumps({"ready": True}), flush=True)
    plan = json.loads(await asyncio.to_thread(sys.stdin.readline))
    counts: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    async with aiohttp.ClientSession() as session:
        loop = asyncio.get_running_loop()
        opened = [loop.create_future() for _ in plan["sockets"]]
        tasks = [
            loop.create_task(_hold(session, plan["url"], user, token, (counts, errors, f)))
            for (user, token), f in zip(plan["sockets"], opened, strict=True)
        ]
        connected = sum(await asyncio.gather(*opened))
        print(json.dumps({"connected": connected, "errors": dict(errors)}), flush=True)
        while line := await asyncio.to_thread(sys.stdin.readline):
            if json.loads(line)["cmd"] == "close":
                break
            closed = sum(t.done() for t in tasks) - (len(tasks) - connected)
            print(json.dumps({"counts": counts, "closed": closed}), flush=True)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"closed": True}), flush=True)


if __name__ == "__main__":
    asyncio.run(_child())
