"""One client process of the fan-out benchmark (bench/fanout.py starts
several): it holds its share of the sockets and answers commands.

A process may open at most RLIMIT_NOFILE files (20,000 here), so the
sockets are spread over processes, each bound to its own 127.0.0.x source
address so that past ~28,000 connections the ephemeral ports of one
address do not run out. Clients offer permessage-deflate as browsers do
(`compress=15`). Kept lean: one reader task per socket, no JSON parsing
beyond the frame type, because the clients share the cores with the server.

Protocol, one JSON object per line: the process says {"ready": true}; then
reads its plan {"url", "sockets": [[user, token], ...], "local_host",
"inflight"} and answers {"connected", "failed", "started", "last_snapshot",
"errors"}; then each {"cmd": "collect", "timeout": s} answers when every
open socket has a broadcast frame (or at the timeout) with the receipt
times; {"cmd": "drop"} closes every socket, remembering the id of the
last broadcast each one got; {"cmd": "reconnect", "inflight": k} opens them
all again with ?since= that id and answers as the first connect, with the
length of each snapshot's `missed`; {"cmd": "close"} closes everything and
exits.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from collections import Counter

import aiohttp

SNAPSHOT_MARK = '"type":"snapshot"'
BROADCAST_MARK = '"type":"notification"'


class Share:
    def __init__(self, plan: dict) -> None:
        self.url = plan["url"]
        self.sockets: list[list[str]] = plan["sockets"]
        self.inflight = plan["inflight"]
        self.local_host = plan.get("local_host")
        self.open: list[aiohttp.ClientWebSocketResponse] = []
        self.readers: list[asyncio.Task] = []
        self.errors: Counter[str] = Counter()
        self.snapshot_at: list[float] = []
        # receipt time of each socket's first broadcast frame since the last collect
        self.got: dict[int, float] = {}
        self.extra = 0  # broadcast frames beyond one per socket
        self.closed = 0  # sockets the server closed
        self.all_in = asyncio.Event()
        self.session: aiohttp.ClientSession | None = None
        self.plan_of: list[int] = []  # open socket -> its place in the plan
        self.last: dict[int, str] = {}  # open socket -> the last broadcast frame it got
        self.since: list[int | None] = []

    async def connect(self, inflight: int, since: list[int | None] | None = None) -> dict:
        """Open every socket of the plan (with ?since= on a reconnect) and wait
        for each one's snapshot; `missed` counts what resume snapshots carried."""
        if self.session is None:
            local = (self.local_host, 0) if self.local_host else None
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, local_addr=local),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=60),
            )
        session = self.session
        gate = asyncio.Semaphore(inflight)
        self.errors.clear()
        snapshot_at: list[float] = []
        missed: list[int] = []
        started = time.time()

        async def one(plan_idx: int, token: str) -> None:
            url = f"{self.url}?token={token}"
            if since is not None and since[plan_idx] is not None:
                url += f"&since={since[plan_idx]}"
            async with gate:
                try:
                    ws = await session.ws_connect(url, compress=15, autoping=True, timeout=60)
                    msg = await asyncio.wait_for(ws.receive(), 60)
                except (aiohttp.ClientError, OSError, TimeoutError) as e:
                    self.errors[type(e).__name__] += 1
                    return
                if msg.type != aiohttp.WSMsgType.TEXT or SNAPSHOT_MARK not in msg.data:
                    self.errors[f"first frame {msg.type.name}"] += 1
                    await ws.close()
                    return
                snapshot_at.append(time.time())
                if since is not None:
                    missed.append(len(json.loads(msg.data).get("missed", ())))
                idx = len(self.open)
                self.open.append(ws)
                self.plan_of.append(plan_idx)
                self.readers.append(asyncio.create_task(self.read(idx, ws)))

        await asyncio.gather(*(one(i, t) for i, (_u, t) in enumerate(self.sockets)))
        return {
            "connected": len(self.open),
            "failed": len(self.sockets) - len(self.open),
            "started": started,
            "last_snapshot": max(snapshot_at, default=started),
            "errors": dict(self.errors),
            "missed": missed,
        }

    async def drop(self) -> dict:
        """Close every socket, as clients do when their server restarts, and
        keep the id of the last broadcast each one got for its ?since=."""
        since: list[int | None] = [None] * len(self.sockets)
        for idx, raw in self.last.items():
            since[self.plan_of[idx]] = json.loads(raw)["notification"]["id"]
        await self._close_all()
        self.since = since
        return {"dropped": len(since), "with_since": sum(s is not None for s in since)}

    async def read(self, idx: int, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT and BROADCAST_MARK in msg.data:
                self.last[idx] = msg.data  # parsed only if a reconnect needs its id
                if idx in self.got:
                    self.extra += 1
                else:
                    self.got[idx] = time.time()
                    if len(self.got) >= len(self.open) - self.closed:
                        self.all_in.set()
        self.closed += 1
        if len(self.got) >= len(self.open) - self.closed:
            self.all_in.set()

    async def collect(self, timeout: float) -> dict:
        if len(self.got) < len(self.open) - self.closed:
            try:
                await asyncio.wait_for(self.all_in.wait(), timeout)
            except TimeoutError:
                pass
        out = {
            "times": list(self.got.values()),
            "expected": len(self.open),
            "extra": self.extra,
            "closed": self.closed,
        }
        self.got, self.extra = {}, 0
        self.all_in = asyncio.Event()
        return out

    async def _close_all(self) -> None:
        await asyncio.gather(*(ws.close() for ws in self.open), return_exceptions=True)
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        self.open, self.readers, self.plan_of = [], [], []
        self.got, self.last, self.extra, self.closed = {}, {}, 0, 0
        self.all_in = asyncio.Event()

    async def close(self) -> None:
        await self._close_all()
        if self.session is not None:
            await self.session.close()


def say(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    say({"ready": True})
    line = await asyncio.to_thread(sys.stdin.readline)
    share = Share(json.loads(line))
    say(await share.connect(share.inflight))
    while line := await asyncio.to_thread(sys.stdin.readline):
        cmd = json.loads(line)
        if cmd["cmd"] == "collect":
            say(await share.collect(cmd["timeout"]))
        elif cmd["cmd"] == "drop":
            say(await share.drop())
        elif cmd["cmd"] == "reconnect":
            say(await share.connect(cmd["inflight"], share.since))
        elif cmd["cmd"] == "close":
            break
    await share.close()
    say({"closed": True})


if __name__ == "__main__":
    asyncio.run(main())
