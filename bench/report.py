"""Turn the raw figures into the printed tables and the JSON on disk.

The machine description is read, never assumed: figures from a 2-core box
and from a workstation are not comparable, so every result file says
where it was measured.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from statistics import median

import psycopg

RECIPIENTS = ("owner", "managers")


def _cmd(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (out.stdout or out.stderr).strip() or "unknown"


def machine(pg_dsn: str, baseline_python: Path) -> dict:
    info: dict = {
        "nproc": _cmd(["nproc"]),
        "cpu": "unknown",
        "memory": "unknown",
        "kernel": platform.release(),
        "python_bench_and_pgbell": platform.python_version(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory"] = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    if baseline_python.exists():
        info["python_baseline"] = _cmd([str(baseline_python), "--version"]).replace("Python ", "")
    info["redis"] = _cmd(["redis-server", "--version"]).split(" sha=")[0]
    try:
        with psycopg.connect(pg_dsn, connect_timeout=5) as conn:
            info["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
            for name in ("fsync", "synchronous_commit", "wal_sync_method", "shared_buffers"):
                info[f"pg_{name}"] = conn.execute(f"SHOW {name}").fetchone()[0]
    except psycopg.Error as e:
        info["postgresql"] = f"unknown ({type(e).__name__})"
    for pkg in ("aiohttp", "asyncpg", "psycopg", "websockets", "matplotlib"):
        try:
            info[f"pkg_{pkg}"] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return info


def _ms(v: float | None) -> str:
    return "-" if v is None else (f"{v:.1f}" if v < 1000 else f"{v:.0f}")


def latency_rows(steps: list[dict], baseline_sql_na: bool) -> list[list[str]]:
    rows = []
    for s in steps:
        for who in RECIPIENTS:
            r = s["recipients"][who]
            lat = r["latency_ms"]
            errors = sum(s["errors"].values())
            rows.append(
                [
                    s["system"],
                    s["scenario"],
                    f"{s['target_rate']:g}",
                    f"{s['achieved_rate']:.1f}",
                    who,
                    _ms(lat["p50"]),
                    _ms(lat["p95"]),
                    _ms(lat["p99"]),
                    _ms(lat["max"]),
                    f"{r['delivered']}/{r['expected']}",
                    str(errors),
                    _ms(s["write_ack_ms"]["p50"]),
                ]
            )
    if baseline_sql_na:
        rows.append(["baseline", "sql", "-", "n/a", "all"] + ["n/a"] * 7)
    return rows


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        cells = zip(r, widths, strict=True)
        # names left, figures right
        lines.append(
            "  ".join(c.rjust(w) if i >= 2 else c.ljust(w) for i, (c, w) in enumerate(cells))
        )
    return "\n".join(lines)


LATENCY_HEADER = [
    "system", "scenario", "rate/s", "achieved/s", "recipient",
    "p50 ms", "p95 ms", "p99 ms", "max ms", "delivered/expected", "errors", "ack p50 ms",
]  # fmt: skip


WRITERS_HEADER = [
    "clients", "set-up", "round", "commits/s", "x plain", "rows committed", "delivered", "lost",
    "resumed", "server CPU s", "NOTIFYs", "fetches",
]  # fmt: skip


def writers_rows(runs: list[dict]) -> list[list[str]]:
    """A row per run; "x plain" against the plain run of the same round."""
    plain = {(r["clients"], r.get("round", 0)): r["commits_per_s"]
             for r in runs if r["setup"] == "plain"}  # fmt: skip
    rows = []
    # stable: set-ups stay in run order within a round
    for r in sorted(runs, key=lambda r: (r["clients"], r.get("round", 0))):
        base = plain.get((r["clients"], r.get("round", 0)))
        lost = r["frames_lost"]
        rows.append(
            [
                str(r["clients"]),
                r["setup"],
                str(r.get("round", 0) + 1),
                f"{r['commits_per_s']:.0f}",
                f"{r['commits_per_s'] / base:.2f}" if base else "-",
                str(r["rows_committed"]),
                "-" if lost is None else str(r["frames_delivered"]),
                "-" if lost is None else str(lost),
                str(sum(r["server_closes"].values())),
                f"{r['server_cpu_s']:.2f}",
                str(r["server_notifies"]),
                str(r["server_fetches"]),
            ]
        )
    return rows


def _by_setup(runs: list[dict]) -> dict[tuple[int, str], list[dict]]:
    """(clients, set-up) -> its runs, one a round."""
    by: dict[tuple[int, str], list[dict]] = {}
    for r in runs:
        by.setdefault((r["clients"], r["setup"]), []).append(r)
    return by


def writers_medians(runs: list[dict]) -> dict[tuple[int, str], float]:
    """(clients, set-up) -> the median of its rounds' commits/s."""
    return {k: median(r["commits_per_s"] for r in rs) for k, rs in _by_setup(runs).items()}


def writers_summary(runs: list[dict]) -> str:
    """Per client count and set-up: the median over the rounds, x plain from
    the medians, the spread; and the wake-up's cost, 1 - pgbell / no wake-up."""
    med = writers_medians(runs)
    header = ["clients", "set-up", "rounds", "median commits/s", "x plain", "min..max", "lost"]
    rows = []
    for (c, setup), rs in sorted(_by_setup(runs).items(), key=lambda kv: kv[0][0]):
        m, base = med[c, setup], med.get((c, "plain"))
        xs = [r["commits_per_s"] for r in rs]
        lost = [r["frames_lost"] for r in rs]
        rows.append([
            str(c), setup, str(len(xs)), f"{m:.0f}", f"{m / base:.2f}" if base else "-",
            f"{min(xs):.0f}..{max(xs):.0f}",
            "-" if None in lost else str(sum(lost)),
        ])  # fmt: skip
    return "Medians over the rounds\n" + format_table(header, rows) + "\n" + wake_up_cost(runs)


def _pct(x: float) -> str:
    text = f"{x:.0%}"
    return "0%" if text == "-0%" else text


def wake_up_cost(runs: list[dict]) -> str:
    """1 - pgbell / no wake-up at each client count: what the wake-up costs.
    Round by round (each round's two runs are close in time, so a slow
    spell of the machine weighs on both) and their median, which is the
    figure; and from the set-ups' medians over the rounds."""
    med = writers_medians(runs)
    by = {(r["clients"], r.get("round", 0), r["setup"]): r["commits_per_s"] for r in runs}
    parts = []
    for c in sorted({r["clients"] for r in runs}):
        if not (med.get((c, "pgbell")) and med.get((c, "no wake-up"))):
            continue
        rounds = sorted({r.get("round", 0) for r in runs if r["clients"] == c})
        each = [
            1 - by[c, r, "pgbell"] / by[c, r, "no wake-up"]
            for r in rounds
            if by.get((c, r, "pgbell")) and by.get((c, r, "no wake-up"))
        ]
        of_medians = 1 - med[c, "pgbell"] / med[c, "no wake-up"]
        parts.append(
            f"{c} client{'s' if c > 1 else ''} {_pct(median(each))}"
            f" (round by round: {', '.join(_pct(x) for x in each)};"
            f" from the medians: {_pct(of_medians)})"
        )
    return "wake-up cost (1 - pgbell / no wake-up, median of the rounds): " + (
        "; ".join(parts) or "-"
    )


def render_writers(w: dict, nproc: str) -> str:
    """The writers' cost table (bench/writers_cost.py), and the idle cost."""
    parts = [
        f"Writers' cost, all-in: pgbench {w['seconds']:g} s a run, one deal per transaction,"
        f" {1 + w['managers']} notification rows each ({w['owners']} owners and"
        f" {w['managers']} managers, one socket each); {nproc} cores",
        format_table(WRITERS_HEADER, writers_rows(w["runs"])),
        "",
        writers_summary(w["runs"]),
        "server CPU s: pgbell serve, from pgbench's start to the run's last frame;"
        " NOTIFYs and fetches: its listener's; resumed: sockets the server closed"
        " that came back with ?since= (their missed rows count as delivered)",
    ]
    for r in w["runs"]:
        tag = f"{r['setup']} at {r['clients']} clients, round {r.get('round', 0) + 1}"
        if r["failed"]:
            parts.append(f"- {tag}: {r['failed']} pgbench transactions failed")
        if r["frames_extra"] or r["frames_duplicate"]:
            parts.append(
                f"- {tag}: {r['frames_extra']} notifications beyond the rows committed,"
                f" {r['frames_duplicate']} received twice"
            )
        if r["server_closes"]:
            parts.append(f"- {tag}: sockets closed by the server (close code: times),"
                         f" each resumed with ?since=: {r['server_closes']}")  # fmt: skip
        if r["frames_lost"]:
            parts.append(f"- {tag}: {r['frames_lost']} frames had not arrived after the wait")
    if w.get("idle"):
        header = ["state", "seconds", "fetches", "server CPU s/s", "its PostgreSQL sessions",
                  "their CPU s/s"]  # fmt: skip
        rows = [
            [i["state"], f"{i['seconds']:g}", str(i["fetches"]), f"{i['server_cpu_per_s']:.4f}",
             str(i["backends"]), f"{i['backends_cpu_per_s']:.4f}"]
            for i in w["idle"]
        ]  # fmt: skip
        parts += ["", "Idle cost of the server (nothing else written)", format_table(header, rows)]
        if w["idle"][0].get("asleep_after_s") is None:
            parts.append("- the server never stopped fetching (60 s): it may not have been asleep")
    return "\n".join(parts)


def cpu_rows(steps: list[dict]) -> tuple[list[str], list[list[str]]]:
    groups = ["server", "postgresql", "redis", "harness"]
    header = ["system", "scenario", "rate/s", *groups, "total"]
    rows = []
    for s in steps:
        c = s.get("cpu_cores_while_writing") or {}
        if c:
            vals = [c.get(g, 0.0) for g in groups]
            rows.append(
                [s["system"], s["scenario"], f"{s['target_rate']:g}"]
                + [f"{v:.2f}" for v in vals]
                + [f"{sum(vals):.2f}"]
            )
    return header, rows


def notes(steps: list[dict]) -> list[str]:
    out = []
    for s in steps:
        tag = f"{s['system']} {s['scenario']} @{s['target_rate']:g}/s"
        lag = s["harness_lag"]
        if (lag.get("max_ms") or 0) > 100:
            out.append(f"{tag}: harness loop lag p99 {lag['p99_ms']} ms, max {lag['max_ms']} ms")
        if s["errors"]:
            out.append(f"{tag}: writer errors {s['errors']}")
        missing = sum(r["missing"] for r in s["recipients"].values())
        owed = sum(r["expected"] for r in s["recipients"].values())
        late = owed - missing - s["delivered_within_drain"]
        if late > 0:
            out.append(f"{tag}: {late} frames came after the {s['drain_s']} s drain (late, kept)")
        if not s["backlog_cleared"]:
            out.append(f"{tag}: started with the previous steps' notifications still stored")
        if missing:
            examples = "; ".join(s["missing_examples"][:3])
            out.append(f"{tag}: {missing} frames never arrived (lost), e.g. {examples}")
        dups = sum(r["duplicates"] + r["extras"] for r in s["recipients"].values())
        if dups:
            out.append(f"{tag}: {dups} duplicate or unexpected frames")
        if s["max_schedule_slip_ms"] > 1000:
            slip = s["max_schedule_slip_ms"] / 1000
            out.append(
                f"{tag}: writer fell up to {slip:.1f} s behind schedule (saturated);"
                f" {s['unsent']} deals never sent"
            )
    return out


def render(result: dict) -> str:
    parts = []
    rows = latency_rows(result["steps"], result["baseline_sql_na"])
    if rows:
        parts += [
            "",
            "End-to-end: deal written -> notification frame (latency in ms; ack = the writer's"
            " own wait for 201 or COMMIT)",
            format_table(LATENCY_HEADER, rows),
        ]
    header, rows = cpu_rows(result["steps"])
    if rows:
        nproc = result.get("machine", {}).get("nproc", "?")
        parts += ["", f"CPU while writing (cores kept busy on average, of {nproc})"]
        parts.append(format_table(header, rows))
    if result.get("writers"):
        nproc = result.get("machine", {}).get("nproc", "?")
        parts += ["", render_writers(result["writers"], nproc)]
        parts.append("baseline: n/a (its notifications are not written by the database)")
    extra = notes(result["steps"]) + result.get("problems", [])
    if extra:
        parts += ["", "Notes:"] + [f"- {n}" for n in extra]
    return "\n".join(parts)


def save(result: dict, results_dir: Path) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / time.strftime("bench-%Y%m%d-%H%M%S.json")
    text = json.dumps(result, indent=1)
    path.write_text(text)
    latest = results_dir / "latest.json"
    tmp = latest.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, latest)
    return path


def command_line() -> str:
    return " ".join([".venv/bin/python", "bench/run.py", *sys.argv[1:]])
