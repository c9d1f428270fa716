"""The recipients' sockets of the writers' benchmark (bench/writers_cost.py),
held in a process of their own so that reading frames does not share the
server's event loop (it still shares the machine's two cores, as browsers
beside a server would not: that is part of "all-in").

One WebSocket per recipient, read by bench/wsreader.py: its CPU is CPU
that browsers would spend on their own machines, so it is kept lean. A
notification frame is not parsed, its id is matched, with one regex over
all the text messages of a chunk: the distinct ids per recipient are
compared with the rows committed for that recipient. The snapshot, the
first frame, is parsed.

Run as a script it is the child: it says {"ready": true}, reads its plan
{"url", "sockets": [[user_id, token], ...]}, opens every socket, waits for
each one's snapshot and answers {"connected", "errors"}; then answers each
{"cmd": "counts"} (and {"cmd": "reset"}, which first forgets what came
before) as `Sockets.counts` says, plus its own CPU seconds so far
("cpu_s"), and stops on {"cmd": "close"}.
Imported, `Sockets` starts and drives it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import wsreader  # noqa: E402

NOTIFICATION_MARK = '"type":"notification"'
ID = re.compile(r'"notification":\{"id"\s*:\s*(\d+)')
SNAPSHOT_MARK = '"type":"snapshot"'
CONNECT_TIMEOUT = 30.0
TRY_AGAIN_LATER = 1013  # the server's close for a socket whose send buffer overflowed
MAX_TRIES = 20


class TryAgain(Exception):
    """The server closed the socket 1013 before its snapshot."""


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

    async def counts(self, reset: bool = False) -> dict:
        """Distinct notifications received per recipient ("counts"), frames
        received twice, the server's closes by code (each one resumed), and
        the sockets gone for good, since the last reset (`reset`: now)."""
        got = await self._line({"cmd": "reset" if reset else "counts"}, 30)
        got["counts"] = Counter(got["counts"])
        return got

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


class Recipient:
    """One recipient's socket: the notification ids it got, and its resumes.

    A socket the server closes (1013 when a burst outgrows its send buffer)
    resumes as a client does, with ?since= the highest id it got; the
    snapshot's `missed` counts as delivered, and a truncated one is resumed
    again from its last row (the one the server promises to move on from).
    Before its first frame, the highest id is the newest of its first
    snapshot."""

    def __init__(self, user: str, token: str) -> None:
        self.user = user
        self.token = token
        self.ids: set[int] = set()
        self.frames = 0
        self.since: int | None = None
        self.closes: Counter[str] = Counter()

    def got(self, ids: list[int]) -> None:
        self.frames += len(ids)
        self.ids.update(ids)
        top = max(ids)
        if self.since is None or top > self.since:
            self.since = top

    def chunk(self, text: str) -> None:
        """The text messages of one chunk, joined: their notification ids."""
        ids = [int(i) for i in ID.findall(text)]  # a match, not a parse: the cores are shared
        # a notification frame whose id did not match counts as id -1: an extra
        unmatched = text.count(NOTIFICATION_MARK) - len(ids)
        if unmatched > 0:
            ids += [-1] * unmatched
        if ids:
            self.got(ids)

    async def _open(self, url: str) -> tuple[wsreader.WsReader, dict]:
        query = f"?token={self.token}" + ("" if self.since is None else f"&since={self.since}")
        ws = await wsreader.connect(url + query, CONNECT_TIMEOUT)
        try:
            first = await asyncio.wait_for(ws.first(), CONNECT_TIMEOUT)
        except BaseException:
            ws.abort()
            raise
        if first is None:
            if ws.error is None and ws.close_code == TRY_AGAIN_LATER:
                raise TryAgain  # a burst outgrew its send buffer before the snapshot went
            raise RuntimeError(ws.error or f"closed {ws.close_code} before the snapshot")
        if SNAPSHOT_MARK not in first:
            await ws.close(CONNECT_TIMEOUT)
            raise RuntimeError("the first frame is not a snapshot")
        return ws, json.loads(first)

    async def hold(self, url: str, opened, errors) -> None:
        tries = 0
        while True:
            try:
                ws, snapshot = await self._open(url)
            except TryAgain:
                self.closes[f"{TRY_AGAIN_LATER} before the snapshot"] += 1
                tries += 1
                if tries < MAX_TRIES:
                    await asyncio.sleep(0.5)  # as a client backs off
                    continue
                errors[f"{MAX_TRIES} times {TRY_AGAIN_LATER} before the snapshot"] += 1
                if not opened.done():
                    opened.set_result(False)
                return
            except (wsreader.HandshakeError, RuntimeError, OSError, TimeoutError) as e:
                named = isinstance(e, wsreader.HandshakeError | RuntimeError)
                errors[str(e) if named else type(e).__name__] += 1
                if not opened.done():
                    opened.set_result(False)
                return
            try:
                if self.since is None:
                    # the resume point a client starts from: the newest row it was shown
                    # (0 when none: the benchmark's table was empty when it connected)
                    self.since = max((n["id"] for n in snapshot["notifications"]), default=0)
                missed = snapshot.get("missed", ())
                before = len(self.ids)
                if missed:
                    self.got([row["id"] for row in missed])
                if snapshot.get("missed_truncated"):
                    if len(self.ids) == before:
                        # it would be sent the same rows again and again
                        errors["a truncated resume brought nothing new"] += 1
                        await ws.close(CONNECT_TIMEOUT)
                        return
                    # resume again from the last row of `missed`, not from the
                    # highest id: rows below it that committed later come first
                    self.since = missed[-1]["id"]
                    await ws.close(CONNECT_TIMEOUT)
                    continue
                tries = 0
                if not opened.done():
                    opened.set_result(True)
                ws.start(self.chunk)
                code = await ws.wait_closed()
            finally:
                ws.abort()  # nothing when it has ended; else (cancelled) it ends here
            if ws.error is not None:
                errors[f"the server broke the protocol: {ws.error}"] += 1
                return
            self.closes[str(code)] += 1


async def _child() -> None:
    print(json.dumps({"ready": True}), flush=True)
    plan = json.loads(await asyncio.to_thread(sys.stdin.readline))
    errors: Counter[str] = Counter()
    recipients = [Recipient(user, token) for user, token in plan["sockets"]]
    loop = asyncio.get_running_loop()
    opened = [loop.create_future() for _ in recipients]
    tasks = [
        loop.create_task(r.hold(plan["url"], f, errors))
        for r, f in zip(recipients, opened, strict=True)
    ]
    connected = sum(await asyncio.gather(*opened))
    print(json.dumps({"connected": connected, "errors": dict(errors)}), flush=True)
    while line := await asyncio.to_thread(sys.stdin.readline):
        cmd = json.loads(line)["cmd"]
        if cmd == "close":
            break
        if cmd == "reset":
            for r in recipients:
                r.ids, r.frames, r.closes = set(), 0, Counter()
        closes = sum((r.closes for r in recipients), Counter())
        print(
            json.dumps(
                {
                    "counts": {r.user: len(r.ids) for r in recipients},
                    "duplicates": sum(r.frames - len(r.ids) for r in recipients),
                    "closes": closes,
                    "gone": sum(t.done() for t in tasks),
                    "errors": errors,
                    "cpu_s": round(time.process_time(), 3),
                }
            ),
            flush=True,
        )
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"closed": True}), flush=True)


if __name__ == "__main__":
    asyncio.run(_child())
