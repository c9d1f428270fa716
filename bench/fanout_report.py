"""The tables bench/fanout.py prints."""

from __future__ import annotations

from bench.report import format_table

HEADER = [
    "system", "connected", "KiB/socket", "connects/s", "CPU ms/connect",
    "p50 ms", "p99 ms", "max ms", "received/expected", "CPU s/10k frames",
]  # fmt: skip


def table(runs: list[dict]) -> str:
    def f(v) -> str:
        return "-" if v is None else f"{v:g}"

    rows = [
        [
            r["system"], f"{r['connected']}/{r['sockets']}", f(r["rss_per_socket_kib"]),
            f(r["connects_per_s"]), f(r["connect_cpu_ms_each"]), f(r["latency_ms"]["p50"]),
            f(r["latency_ms"]["p99"]), f(r["latency_ms"]["max"]),
            f"{r['frames_received']}/{r['frames_expected']}", f(r["cpu_s_per_10k_frames"]),
        ]
        for r in runs
    ]  # fmt: skip
    return format_table(HEADER, rows)


STORM_HEADER = [
    "system", "reconnected", "seconds", "per s", "CPU ms each", "PostgreSQL CPU s",
    "SYNs dropped", "missed delivered",
]  # fmt: skip


def storm_table(runs: list[dict]) -> str:
    rows = []
    for r in runs:
        st = r["storm"]
        done = st["resumed_complete"]
        rows.append(
            [
                r["system"], f"{st['reconnected']}/{r['sockets']}", f"{st['seconds']:g}",
                f"{st['per_s'] or 0:g}", f"{st['server_cpu_ms_each'] or 0:g}",
                # backends that exit during the storm take their CPU time with
                # them (bench/cpu.py): below zero reads as nothing measurable
                f"{max(0.0, st['postgresql_cpu_s']):g}", str(st["listen_drops"]),
                "n/a" if done is None else f"{done}/{r['sockets']}",
            ]
        )  # fmt: skip
    return format_table(STORM_HEADER, rows)
