"""Every knob of the benchmark, parsed from the command line in one place.

The defaults are sized for a 2-core machine: the whole run (both systems,
every scenario, the pgbench part) finishes in about five minutes.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

ROOT = Path(__file__).resolve().parent.parent
BASELINE_DIR = Path("/work/shared/baseline/django_channels")
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/pgbell_bench"

LOOPBACK = ("127.0.0.1", "localhost", "::1")
SYSTEMS = ("baseline", "pgbell")
SCENARIOS = ("http", "sql", "writers")


@dataclass(frozen=True)
class Options:
    users: int
    managers: int
    conns: int
    rates: tuple[float, ...]
    duration: float
    drain: float
    max_inflight: int
    sql_conns: int
    pgbench_seconds: float
    pgbench_clients: tuple[int, ...]
    pgbench_rounds: int
    systems: tuple[str, ...]
    scenarios: tuple[str, ...]
    pgbell_url: str
    baseline_dir: Path
    results_dir: Path
    plot_path: Path
    startup_timeout: float
    keep_backlog: bool

    @property
    def owners(self) -> int:
        """Users that own deals: every non-manager except the writer."""
        return self.users - self.managers - 1

    def expected_per_deal(self) -> int:
        # one frame per connection of the owner and of every manager
        return self.conns * (1 + self.managers)


def require_loopback(url: str) -> None:
    """Every byte of the benchmark stays on this machine."""
    host = conninfo_to_dict(url).get("host", "")
    if host not in LOOPBACK and not host.startswith("/"):  # a socket path is local too
        raise SystemExit(f"bench: refusing a non-loopback database host {host!r} in {url}")


def _number_list(kind: type, lo: float, hi: float):
    """An argparse type: comma-separated numbers of `kind`, each within lo..hi."""

    def parse(text: str) -> tuple:
        try:
            values = tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list: {text!r}") from None
        if not values or any(not lo <= v <= hi for v in values):
            raise argparse.ArgumentTypeError(f"every value must be between {lo:g} and {hi:g}")
        return values

    return parse


_rates = _number_list(float, 0.1, 5000)
_clients = _number_list(int, 1, 256)


def _choices(allowed: tuple[str, ...]):
    def parse(text: str) -> tuple[str, ...]:
        values = tuple(v.strip() for v in text.split(",") if v.strip())
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}; got {text!r}")
        return values

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/run.py",
        description=(
            "Load benchmark: pgbell against the Django Channels + Redis baseline, same"
            " workload, one run. A writer creates deals at fixed rates; every deal must"
            " reach its owner's and every manager's WebSocket connections. Prints a table,"
            " writes raw figures to bench/results/ and the latency picture to"
            " docs/bench-latency.png."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    w = p.add_argument_group("workload")
    w.add_argument("--users", type=int, default=40, help="users, each with --conns sockets")
    w.add_argument("--managers", type=int, default=4, help="managers among them (every deal)")
    w.add_argument("--conns", type=int, default=2, help="WebSocket connections per user")
    w.add_argument(
        "--rates",
        type=_rates,
        default="20,100,500",
        help="deals per second, one step each; the later steps look for saturation",
    )
    w.add_argument("--duration", type=float, default=10.0, help="seconds of writing per step")
    w.add_argument(
        "--drain", type=float, default=15.0, help="seconds to wait for late frames after a step"
    )
    w.add_argument(
        "--max-inflight", type=int, default=64, help="most POSTs (or SQL inserts) in flight"
    )
    w.add_argument("--sql-conns", type=int, default=4, help="psycopg connections of the SQL writer")
    w.add_argument(
        "--keep-backlog",
        action="store_true",
        help="do not delete the stored notifications before each step: unread backlogs"
        " then grow from step to step, and so does the cost of counting them",
    )
    c = p.add_argument_group("writers' cost (pgbench, bench/writers_cost.py)")
    c.add_argument("--pgbench-seconds", type=float, default=10.0, help="seconds per pgbench run")
    c.add_argument(
        "--pgbench-clients", type=_clients, default="1,16,64", help="pgbench client counts to try"
    )
    c.add_argument(
        "--pgbench-rounds", type=int, default=3,
        help="rounds per client count, the set-ups' order rotated; medians compared",
    )  # fmt: skip
    s = p.add_argument_group("selection and places")
    s.add_argument(
        "--systems",
        type=_choices(SYSTEMS),
        default=",".join(SYSTEMS),
        help="systems to run, by name",
    )
    s.add_argument(
        "--scenarios",
        type=_choices(SCENARIOS),
        default=",".join(SCENARIOS),
        help="http: REST writer (both systems); sql: psycopg writer (pgbell);"
        " writers: pgbench commits/s with pgbell serve running, plain and pgbell set-ups",
    )
    s.add_argument(
        "--pgbell-url",
        default=DEFAULT_PG_URL,
        help="database pgbell gets; DROPPED and recreated on every run",
    )
    s.add_argument("--baseline-dir", type=Path, default=BASELINE_DIR, help="baseline checkout")
    s.add_argument(
        "--results-dir", type=Path, default=ROOT / "bench" / "results", help="raw JSON and logs"
    )
    s.add_argument(
        "--plot", type=Path, default=ROOT / "docs" / "bench-latency.png", help="latency picture"
    )
    s.add_argument(
        "--startup-timeout", type=float, default=300.0, help="seconds a server gets to start"
    )
    return p


def parse(argv: list[str] | None = None) -> Options:
    p = build_parser()
    a = p.parse_args(argv)
    if not 1 <= a.managers < a.users - 1:
        p.error("--managers must leave at least two non-managers (a writer and an owner)")
    if not 3 <= a.users <= 2000:
        p.error("--users must be between 3 and 2000")
    if not 1 <= a.conns <= 16:
        p.error("--conns must be between 1 and 16")
    if not 0.5 <= a.duration <= 600 or not 0.5 <= a.drain <= 600:
        p.error("--duration and --drain must be between 0.5 and 600 seconds")
    if not 1 <= a.max_inflight <= 1024 or not 1 <= a.sql_conns <= 64:
        p.error("--max-inflight must be 1..1024 and --sql-conns 1..64")
    if not 1 <= a.pgbench_seconds <= 600:
        p.error("--pgbench-seconds must be between 1 and 600")
    if not 1 <= a.pgbench_rounds <= 20:
        p.error("--pgbench-rounds must be between 1 and 20")
    require_loopback(a.pgbell_url)
    return Options(
        users=a.users,
        managers=a.managers,
        conns=a.conns,
        rates=a.rates,
        duration=a.duration,
        drain=a.drain,
        max_inflight=a.max_inflight,
        sql_conns=a.sql_conns,
        pgbench_seconds=a.pgbench_seconds,
        pgbench_clients=a.pgbench_clients,
        pgbench_rounds=a.pgbench_rounds,
        systems=a.systems,
        scenarios=a.scenarios,
        pgbell_url=a.pgbell_url,
        baseline_dir=a.baseline_dir,
        results_dir=a.results_dir,
        plot_path=a.plot,
        startup_timeout=a.startup_timeout,
        keep_backlog=a.keep_backlog,
    )
