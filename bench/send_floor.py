"""The kernel's floor under a broadcast: `.venv/bin/python bench/send_floor.py`.

What one `send()` of a notification-sized WebSocket frame on each of N
loopback TCP sockets costs the sending process, with nothing else in the
process: no event loop, no framing, no Python object per socket beyond
the socket itself. A reader process of its own holds the N client ends and
reads everything. Each round sends one frame on every socket and takes the
sender's user + system CPU from getrusage; the report gives CPU seconds
per 10,000 frames and microseconds per send, to read beside bench/fanout.py's
"CPU s/10k frames" of pgbell and of the floor (on loopback the sender's
system time includes the receiving side's TCP work, done in its send()).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import select
import socket
import statistics
import sys
import time

from pgbell.http.wsdirect import text_frame


def reader(port: int, n: int, expect: int, ready_w: int) -> None:
    """The client ends: connect n sockets, then read until `expect` bytes came.
    From a loopback address of their own, picked at random: a benchmark that
    just closed thousands of sockets leaves their ports in TIME_WAIT on the
    usual addresses."""
    src = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    socks = [
        socket.create_connection(("127.0.0.1", port), source_address=(src, 0)) for _ in range(n)
    ]
    ep = select.epoll()
    for s in socks:
        s.setblocking(False)
        ep.register(s.fileno(), select.EPOLLIN)
    os.write(ready_w, b"1")
    got, deadline = 0, time.monotonic() + 120
    while got < expect and time.monotonic() < deadline:
        for fd, _ in ep.poll(1.0):
            try:
                got += len(os.read(fd, 1 << 16))
            except BlockingIOError:
                continue
    os._exit(0 if got >= expect else 1)


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="bench/send_floor.py",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--sockets", type=int, default=10_000, help="loopback sockets")
    p.add_argument("--rounds", type=int, default=5, help="broadcasts, one frame per socket each")
    p.add_argument("--payload", type=int, default=400, help="frame payload bytes")
    a = p.parse_args(argv)
    if not 1 <= a.sockets <= 15_000 or not 1 <= a.rounds <= 100 or not 1 <= a.payload < 65536:
        p.error("--sockets 1..15000, --rounds 1..100, --payload 1..65535")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < a.sockets + 64:
        p.error(f"this process may open {hard} files: fewer --sockets")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    data = text_frame("x" * a.payload)  # the frame pgbell writes, as it frames it

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    ready_r, ready_w = os.pipe()
    child = os.fork()
    if child == 0:
        listener.close()
        try:
            reader(port, a.sockets, a.sockets * a.rounds * len(data), ready_w)
        except BaseException as e:  # the forked reader must never go on as the sender
            print(f"bench: send floor's reader: {e!r}", file=sys.stderr, flush=True)
        os._exit(2)
    conns = []
    listener.settimeout(30)  # a reader that failed to connect ends the run, not hangs it
    for _ in range(a.sockets):
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.setblocking(False)
        conns.append(conn)
    if os.read(ready_r, 1) != b"1":
        raise SystemExit("bench: the reader did not start")

    per_10k = []
    for i in range(a.rounds):
        c0, w0 = cpu_s(), time.perf_counter()
        for conn in conns:
            conn.send(data)
        c1, w1 = cpu_s(), time.perf_counter()
        per_10k.append((c1 - c0) * 10_000 / a.sockets)
        print(
            f"round {i + 1}: {a.sockets} sends of {len(data)} bytes, CPU {c1 - c0:.3f} s,"
            f" wall {w1 - w0:.3f} s, {(c1 - c0) / a.sockets * 1e6:.1f} us a send",
            flush=True,
        )
        time.sleep(0.5)  # the reader catches up between rounds: they do not overlap its reads
    _, status = os.waitpid(child, 0)
    if status != 0:
        print("bench: the reader did not get every byte", file=sys.stderr)
        return 1
    med = statistics.median(per_10k)
    print(
        f"send floor: {a.sockets} loopback sockets, one {len(data)}-byte frame each,"
        f" {a.rounds} rounds: median {med:.3f} CPU s per 10,000 frames"
        f" ({med / 10_000 * 1e6:.1f} us a send; min {min(per_10k):.3f}, max {max(per_10k):.3f});"
        f" {os.cpu_count()} cores"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
