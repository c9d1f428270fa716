"""The receiving side: log users in, hold their WebSockets, time every frame.

Speaks only the wire contract (PROTOCOL.md), so the same code measures
pgbell and the baseline. A frame is stamped with time.perf_counter() the
moment the event loop hands it over; the writer stamps its sends with the
same clock in the same process, so a latency is one subtraction.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import aiohttp


@dataclass(frozen=True)
class User:
    name: str
    id: int
    token: str
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Frame:
    deal_id: int
    user_id: int
    conn: int  # which of the user's connections got it
    t: float  # perf_counter() on arrival
    notification_id: int


async def login(http: aiohttp.ClientSession, base_url: str, name: str) -> User:
    async with http.post(f"{base_url}/auth/login", json={"username": name, "password": "pw"}) as r:
        body = await r.json(content_type=None)
        if r.status != 200:
            raise RuntimeError(f"login {name}: HTTP {r.status} {body}")
    u = body["user"]
    return User(name, int(u["id"]), body["token"], tuple(u.get("roles", ())))


async def login_all(
    http: aiohttp.ClientSession, base_url: str, names: list[str], parallel: int = 4
) -> dict[str, User]:
    # a few at a time: a login is a password hash, and a burst of them on two
    # cores would only queue inside the server
    sem = asyncio.Semaphore(parallel)

    async def one(name: str) -> User:
        async with sem:
            return await asyncio.wait_for(login(http, base_url, name), timeout=60)

    users = await asyncio.gather(*(one(n) for n in names))
    return {u.name: u for u in users}


@dataclass
class Fleet:
    """Every benchmark WebSocket of one system, with what it received."""

    base_url: str
    users: list[User]
    conns: int
    frames_by_deal: dict[int, list[Frame]] = field(default_factory=lambda: defaultdict(list))
    other_types: Counter[str] = field(default_factory=Counter)
    closed: list[str] = field(default_factory=list)  # sockets that ended before we closed them
    _sockets: list[aiohttp.ClientWebSocketResponse] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _session: aiohttp.ClientSession | None = None
    _closing: bool = False

    async def connect(self, deadline: float, max_frames: int, timeout: float = 60.0) -> None:
        """Open every socket, wait for each one's snapshot, then start the readers.

        Readers stop by themselves at `deadline` (a time.monotonic() value)
        or after `max_frames`, whichever comes first.
        """
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        sem = asyncio.Semaphore(16)

        async def open_one(user: User, idx: int) -> None:
            async with sem:
                ws = await self._session.ws_connect(
                    f"{self.base_url}/ws", params={"token": user.token}, max_msg_size=0
                )
                self._sockets.append(ws)
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise RuntimeError(f"{user.name}#{idx}: no snapshot, got {msg.type} {msg.data}")
                first = json.loads(msg.data)
                if first.get("type") != "snapshot":
                    raise RuntimeError(f"{user.name}#{idx}: first frame is {first.get('type')!r}")
                self._tasks.append(
                    asyncio.get_running_loop().create_task(
                        self._read(ws, user, idx, deadline, max_frames)
                    )
                )

        jobs = [open_one(u, i) for u in self.users for i in range(self.conns)]
        try:
            await asyncio.wait_for(asyncio.gather(*jobs), timeout=timeout)
        except TimeoutError:
            raise RuntimeError(
                f"only {len(self._tasks)} of {len(jobs)} sockets got their snapshot"
                f" within {timeout:.0f} s"
            ) from None

    async def _read(
        self, ws: aiohttp.ClientWebSocketResponse, user: User, idx: int, deadline: float, cap: int
    ) -> None:
        try:
            async with asyncio.timeout_at(_loop_time(deadline)):
                for _ in range(cap):
                    msg = await ws.receive()
                    t = time.perf_counter()
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        self._record(json.loads(msg.data), user, idx, t)
                    elif msg.type in (
                        aiohttp.WSMsgType.CLOSE,
                        aiohttp.WSMsgType.CLOSING,
                        aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.ERROR,
                    ):
                        if not self._closing:
                            self.closed.append(
                                f"{user.name}#{idx}: {msg.type.name} code={ws.close_code}"
                                f" {msg.data!r}"
                            )
                        return
        except TimeoutError:
            return  # the deadline: the run is over

    def _record(self, obj: dict, user: User, idx: int, t: float) -> None:
        kind = obj.get("type")
        if kind != "notification":
            self.other_types[str(kind)] += 1
            return
        n = obj.get("notification") or {}
        deal_id = (n.get("data") or {}).get("deal_id")
        if deal_id is None:
            self.other_types["notification without data.deal_id"] += 1
            return
        frame = Frame(int(deal_id), user.id, idx, t, int(n.get("id", -1)))
        self.frames_by_deal[frame.deal_id].append(frame)

    def delivered(self, deal_ids: list[int]) -> int:
        frames = self.frames_by_deal
        return sum(len(frames.get(d, ())) for d in deal_ids)

    async def close(self) -> None:
        """Close every socket and reader; bounded, safe to call twice."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

        async def close_one(ws: aiohttp.ClientWebSocketResponse) -> None:
            try:
                await asyncio.wait_for(ws.close(), timeout=2)
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass

        await asyncio.gather(*(close_one(ws) for ws in self._sockets))
        if self._session is not None:
            await self._session.close()
        self._tasks.clear()
        self._sockets.clear()


def _loop_time(monotonic_deadline: float) -> float:
    # asyncio.timeout_at takes the loop's clock, which is not guaranteed to
    # be time.monotonic(); translate
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - time.monotonic())
