"""The one committed picture: latency distributions, both systems.

One panel per write rate, one curve per (system, writer): the share of
frames that arrived within x milliseconds. A CDF on a log axis shows the
median and the tail at once, and a curve that stops short of 100 % is a
loss, which a box plot would hide.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on a server; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

STYLE = {
    ("baseline", "http"): ("tab:red", "-", "baseline (Django Channels + Redis), REST writer"),
    ("pgbell", "http"): ("tab:blue", "-", "pgbell, REST writer"),
    ("pgbell", "sql"): ("tab:green", "--", "pgbell, SQL writer (from COMMIT)"),
}


def latency_cdf(steps: list[dict], path: Path, subtitle: str) -> Path:
    rates = sorted({s["target_rate"] for s in steps})
    if not rates:
        raise ValueError("no steps to plot")
    fig, axes = plt.subplots(
        1, len(rates), figsize=(5.2 * len(rates), 4.4), sharex=True, sharey=True, squeeze=False
    )
    for ax, rate in zip(axes[0], rates, strict=True):
        for s in (s for s in steps if s["target_rate"] == rate):
            color, ls, label = STYLE.get(
                (s["system"], s["scenario"]), ("gray", ":", f"{s['system']} {s['scenario']}")
            )
            values: list[float] = []
            expected = 0
            for r in s["recipients"].values():
                values += r["latencies_ms"]
                expected += r["expected"]
            if not values or not expected:
                continue
            values.sort()
            # y is the share of *expected* frames, so losses keep the curve below 1
            ys = [(i + 1) / expected for i in range(len(values))]
            ax.step(values, ys, where="post", color=color, linestyle=ls, label=label)
        ax.set_xscale("log")
        # one x scale for every panel, so that the panels compare at a glance
        ax.xaxis.set_major_formatter(FuncFormatter(_ms_label))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{rate:g} deals/s")
        ax.set_xlabel("deal written -> frame received (log scale)")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_ylim(0, 1.02)
    axes[0][0].set_ylabel("share of expected frames delivered")
    axes[0][0].legend(loc="lower right", fontsize=8)
    title = f"Notification latency, owner and managers, all connections\n{subtitle}"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _ms_label(value: float, _pos: int) -> str:
    if value >= 1000:
        return f"{value / 1000:g} s"
    return f"{value:g} ms"


def fanout_cdf(runs: list[dict], path: Path) -> Path:
    """bench/fanout.py: one curve per system, the share of expected frames
    that arrived within x ms of the broadcast's trigger."""
    fig, ax = plt.subplots(figsize=(7, 4.4))
    for r in runs:
        values, expected = r["latencies_ms"], r["frames_expected"]
        if values and expected:
            ys = [(i + 1) / expected for i in range(len(values))]
            ax.step(values, ys, where="post", label=r["system"])
    ax.xaxis.set_major_formatter(FuncFormatter(_ms_label))
    ax.set_xlabel("trigger (COMMIT or POST) -> frame received")
    ax.set_ylabel("share of expected frames delivered")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    n = runs[0]["sockets"]
    ax.set_title(f"One broadcast to {n:,} sockets (clients offer permessage-deflate)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
