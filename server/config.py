"""Every setting pgbell reads from the environment, in one place.

.env.example at the project root explains each variable in one line.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pgbell.tokens import load_public_key

log = logging.getLogger(__name__)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def _int(env: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _float(env: dict[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


_TRUE = ("1", "on", "true", "yes")
_FALSE = ("0", "off", "false", "no")


def _flag(env: dict[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"{name} must be on or off (also 1/0, true/false, yes/no), got {raw[:40]!r}")


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(o.strip() for o in raw.split(",") if o.strip())
    for origin in origins:
        scheme, sep, rest = origin.partition("://")
        if origin != "*" and (
            scheme not in ("http", "https") or not sep or not rest or "/" in rest
        ):
            raise ConfigError(
                "PGBELL_CORS_ORIGINS must list origins like https://app.example.com"
                f" (no path, no trailing slash) or *, got {origin!r}"
            )
    return origins


def _proxies(raw: str) -> tuple[Network, ...]:
    networks = []
    for item in (p.strip() for p in raw.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f"PGBELL_TRUSTED_PROXIES: not an IP address or network: {item!r}"
            ) from None
    return tuple(networks)


# The example value of .env.example: a server that starts with it would
# accept tokens anyone can sign. tests/test_config.py keeps the two in step.
PLACEHOLDER_SECRET = "change-me-to-a-long-random-string-of-32-chars-or-more"
MIN_SECRET_BYTES = 32
KEY_VARIABLES = "PGBELL_JWT_SECRET, PGBELL_JWT_PUBLIC_KEY or PGBELL_JWT_JWKS_URL"


def _secret(raw: str) -> str:
    if raw and len(raw.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(f"PGBELL_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes long")
    if raw == PLACEHOLDER_SECRET:
        raise ConfigError(
            "PGBELL_JWT_SECRET is the example value from .env.example: anyone could sign"
            " tokens with it; set a long random secret (e.g. `openssl rand -base64 48`)"
        )
    return raw


def _public_key(raw: str) -> str:
    """PEM text or a path to a PEM file, checked now so that a bad key stops
    the start, not the first request. A one-line PEM with literal \\n (as
    some secret stores hand it out) is accepted too."""
    value = raw.strip()
    if value.startswith("-----BEGIN") and "\\n" in value:
        value = value.replace("\\n", "\n")
    if value:
        try:
            load_public_key(value)
        except ValueError as e:
            raise ConfigError(f"PGBELL_JWT_PUBLIC_KEY: {e}") from None
    return value


def _jwks_url(raw: str) -> str:
    if raw and (urlsplit(raw).scheme not in ("http", "https") or not urlsplit(raw).netloc):
        raise ConfigError(f"PGBELL_JWT_JWKS_URL must be an http(s) URL, got {raw[:100]!r}")
    return raw


def _claim(raw: str) -> str:
    claim = raw or "sub"
    if not (claim.isascii() and claim.isprintable() and 1 <= len(claim) <= 64):
        raise ConfigError("PGBELL_JWT_USER_CLAIM must be a claim name (1 to 64 characters)")
    return claim


POOL_MODES = ("direct", "session", "transaction")
# asyncpg's own default: prepared statements kept per pool connection
DEFAULT_STATEMENT_CACHE = 100


def _pool_mode(raw: str) -> str:
    mode = (raw or "direct").strip().lower()
    if mode == "statement":
        raise ConfigError(
            "PGBELL_DB_POOL_MODE=statement: pgbell runs multi-statement transactions,"
            " which statement pooling forbids; use a transaction-mode pool"
        )
    if mode not in POOL_MODES:
        raise ConfigError(f"PGBELL_DB_POOL_MODE must be one of {', '.join(POOL_MODES)}")
    return mode


def _listen_url(env: dict[str, str], database_url: str, pool_mode: str) -> str:
    """The LISTEN connection's URL. A transaction pooler hands each transaction
    to whichever backend is free, so a LISTEN made through it hears nothing
    once its transaction ends: under PGBELL_DB_POOL_MODE=transaction the
    listener needs a URL of its own."""
    url = env.get("PGBELL_LISTEN_DATABASE_URL", "").strip()
    if pool_mode == "transaction" and url in ("", database_url):
        raise ConfigError(
            "PGBELL_DB_POOL_MODE=transaction: the LISTEN connection cannot go through the"
            " transaction pooler of DATABASE_URL; set PGBELL_LISTEN_DATABASE_URL to reach"
            " PostgreSQL directly (or through a session-mode pool)"
        )
    return url or database_url


def cores() -> int:
    """The cores this process may run on (os.process_cpu_count() of Python
    3.13: the CPU affinity, which a container or taskset narrows)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# `pgbell serve --workers N`: more would only share the same cores
MAX_WORKERS = 256


def _default_login_threads() -> int:
    """All cores but one: the event loop keeps a core while passwords are checked."""
    return max(1, (os.cpu_count() or 2) - 1)


@dataclass(frozen=True)
class Settings:
    database_url: str
    # The LISTEN connection's URL; DATABASE_URL unless PGBELL_LISTEN_DATABASE_URL.
    listen_database_url: str = ""
    # What DATABASE_URL reaches: direct, session or transaction (a pooler's mode)
    db_pool_mode: str = "direct"
    # asyncpg's prepared-statement cache per pool connection; 0 turns it off
    db_statement_cache: int = DEFAULT_STATEMENT_CACHE
    # Token key sources (PROTOCOL.md v2): at least one is set.
    jwt_secret: str = field(default="", repr=False)
    jwt_public_key: str = field(default="", repr=False)
    jwt_jwks_url: str = ""
    jwt_audience: str = ""
    jwt_issuer: str = ""
    jwt_user_claim: str = "sub"
    jwt_ttl: int = 3600
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 64 * 1024
    ws_max_frame_bytes: int = 64 * 1024
    ws_heartbeat: float = 30.0
    # negotiate permessage-deflate with clients that offer it: each socket
    # then keeps zlib state (about 100 KB) and every frame is deflated on
    # the event loop, so it is off unless bandwidth matters more
    ws_compression: bool = False
    send_queue_size: int = 16384
    snapshot_size: int = 50
    poll_interval: float = 5.0
    # adaptive wake-up: looks every wake_interval while awake; tries to fall
    # asleep (writers then send NOTIFY) after wake_idle seconds without rows
    wake_interval: float = 0.002
    wake_idle: float = 0.05
    db_pool_max: int = 10
    log_level: str = "INFO"
    log_format: str = "json"
    max_sockets_per_user: int = 50
    metrics_token: str = field(default="", repr=False)
    login_max_failures: int = 10
    login_window: float = 300.0
    # failed logins per client address in the window, whatever the usernames
    login_max_failures_per_address: int = 100
    # password checks (argon2, CPU-bound) run in this many threads, off the
    # event loop; at most login_max_pending wait for one, more answer 429
    login_threads: int = 1
    login_max_pending: int = 16
    # bytes queued for one socket before it is closed 1013 (slow consumer)
    send_buffer_bytes: int = 4 * 1024 * 1024
    # bytes of `missed` in a resume snapshot; the rest is paged over REST
    resume_max_bytes: int = 1024 * 1024
    # read frames a socket may send per second (a burst of twice as many)
    ws_reads_per_second: float = 20.0
    # deals one user may create per minute (the demo)
    deals_per_minute: int = 60
    cors_origins: tuple[str, ...] = ()
    trusted_proxies: tuple[Network, ...] = ()
    # seconds between SIGTERM and closing, /readyz answering 503 meanwhile
    shutdown_drain: float = 0.0
    # processes of `pgbell serve`, each with its own listener, pool and hub
    workers: int = field(default_factory=cores)

    def __post_init__(self) -> None:
        if not self.listen_database_url:
            # a Settings built in code with a database_url alone listens there too
            object.__setattr__(self, "listen_database_url", self.database_url)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        env = dict(os.environ if env is None else env)
        url = env.get("DATABASE_URL", "")
        if not url:
            raise ConfigError(
                "DATABASE_URL is not set (a libpq URL: postgresql://user@host:port/db)"
            )
        pool_mode = _pool_mode(env.get("PGBELL_DB_POOL_MODE", ""))
        # Fail closed: no key source, no server. Only `pgbell run` makes up
        # a development secret, and it does so before it gets here.
        values: dict[str, object] = dict(
            database_url=url,
            listen_database_url=_listen_url(env, url, pool_mode),
            db_pool_mode=pool_mode,
            # behind a transaction pooler a statement prepared on one backend is
            # unknown to the next; PgBouncer 1.21+ with max_prepared_statements
            # tracks them, and then the cache may be turned back on explicitly
            db_statement_cache=_int(
                env,
                "PGBELL_DB_STATEMENT_CACHE",
                0 if pool_mode == "transaction" else DEFAULT_STATEMENT_CACHE,
                0,
                10_000,
            ),
            jwt_secret=_secret(env.get("PGBELL_JWT_SECRET", "")),
            jwt_public_key=_public_key(env.get("PGBELL_JWT_PUBLIC_KEY", "")),
            jwt_jwks_url=_jwks_url(env.get("PGBELL_JWT_JWKS_URL", "").strip()),
            jwt_audience=env.get("PGBELL_JWT_AUDIENCE", ""),
            jwt_issuer=env.get("PGBELL_JWT_ISSUER", ""),
            jwt_user_claim=_claim(env.get("PGBELL_JWT_USER_CLAIM", "")),
            jwt_ttl=_int(env, "PGBELL_JWT_TTL", 3600, 1, 30 * 24 * 3600),
            host=env.get("PGBELL_HOST") or "127.0.0.1",
            port=_int(env, "PGBELL_PORT", 8080, 0, 65535),
            max_body_bytes=_int(env, "PGBELL_MAX_BODY_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024),
            ws_max_frame_bytes=_int(
                env, "PGBELL_WS_MAX_FRAME_BYTES", 64 * 1024, 128, 16 * 1024 * 1024
            ),
            ws_heartbeat=_float(env, "PGBELL_WS_HEARTBEAT", 30.0, 1.0, 3600.0),
            ws_compression=_flag(env, "PGBELL_WS_COMPRESSION", False),
            send_queue_size=_int(env, "PGBELL_SEND_QUEUE_SIZE", 16384, 1, 1_000_000),
            poll_interval=_float(env, "PGBELL_POLL_INTERVAL", 5.0, 0.05, 3600.0),
            wake_interval=_float(env, "PGBELL_WAKE_INTERVAL", 0.002, 0.0005, 1.0),
            wake_idle=_float(env, "PGBELL_WAKE_IDLE", 0.05, 0.0, 60.0),
            db_pool_max=_int(env, "PGBELL_DB_POOL_MAX", 10, 2, 1000),
            log_level=(env.get("PGBELL_LOG_LEVEL") or "INFO").upper(),
            log_format=(env.get("PGBELL_LOG_FORMAT") or "json").lower(),
            metrics_token=env.get("PGBELL_METRICS_TOKEN", ""),
            login_max_failures=_int(env, "PGBELL_LOGIN_MAX_FAILURES", 10, 1, 1_000_000),
            login_window=_float(env, "PGBELL_LOGIN_WINDOW", 300.0, 1.0, 86400.0),
            cors_origins=_origins(env.get("PGBELL_CORS_ORIGINS", "")),
            trusted_proxies=_proxies(env.get("PGBELL_TRUSTED_PROXIES", "")),
            max_sockets_per_user=_int(env, "PGBELL_MAX_SOCKETS_PER_USER", 50, 1, 100_000),
            login_max_failures_per_address=_int(
                env, "PGBELL_LOGIN_MAX_FAILURES_PER_ADDRESS", 100, 1, 1_000_000
            ),
            login_threads=_int(env, "PGBELL_LOGIN_THREADS", _default_login_threads(), 1, 64),
            login_max_pending=_int(env, "PGBELL_LOGIN_MAX_PENDING", 16, 1, 10_000),
            send_buffer_bytes=_int(
                env, "PGBELL_SEND_BUFFER_BYTES", 4 * 1024 * 1024, 64 * 1024, 1024**3
            ),
            resume_max_bytes=_int(
                env, "PGBELL_RESUME_MAX_BYTES", 1024 * 1024, 16 * 1024, 256 * 1024 * 1024
            ),
            ws_reads_per_second=_float(env, "PGBELL_WS_READS_PER_SECOND", 20.0, 0.1, 100_000.0),
            deals_per_minute=_int(env, "PGBELL_DEALS_PER_MINUTE", 60, 1, 1_000_000),
            shutdown_drain=_float(env, "PGBELL_SHUTDOWN_DRAIN", 0.0, 0.0, 600.0),
            workers=_int(env, "PGBELL_WORKERS", cores(), 1, MAX_WORKERS),
        )
        if not (values["jwt_secret"] or values["jwt_public_key"] or values["jwt_jwks_url"]):
            raise ConfigError(
                f"no key to check tokens with: set {KEY_VARIABLES}"
                " (`pgbell run` makes up a development secret; `pgbell serve` does not)"
            )
        if values["log_format"] not in ("json", "text"):
            raise ConfigError("PGBELL_LOG_FORMAT must be json or text")
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
