"""Every setting pgbell reads from the environment, in one place.

.env.example at the project root explains each variable in one line.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class Settings:
    database_url: str
    jwt_secret: str = field(repr=False)
    jwt_ttl: int = 3600
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 64 * 1024
    ws_max_frame_bytes: int = 64 * 1024
    ws_heartbeat: float = 30.0
    send_queue_size: int = 16384
    snapshot_size: int = 50
    poll_interval: float = 5.0
    db_pool_max: int = 10
    log_level: str = "INFO"
    log_format: str = "json"
    jwt_secret_generated: bool = False
    metrics_token: str = field(default="", repr=False)
    login_max_failures: int = 10
    login_window: float = 300.0
    cors_origins: tuple[str, ...] = ()
    trusted_proxies: tuple[Network, ...] = ()

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        env = dict(os.environ if env is None else env)
        url = env.get("DATABASE_URL", "")
        if not url:
            raise ConfigError(
                "DATABASE_URL is not set (a libpq URL: postgresql://user@host:port/db)"
            )
        secret = env.get("PGBELL_JWT_SECRET", "")
        generated = False
        if not secret:
            # A random secret keeps a lone dev server working; tokens then die
            # with the process and do not work across servers, hence the warning.
            secret = secrets.token_urlsafe(32)
            generated = True
        elif len(secret) < 32:
            raise ConfigError("PGBELL_JWT_SECRET must be at least 32 characters")
        values: dict[str, object] = dict(
            database_url=url,
            jwt_secret=secret,
            jwt_secret_generated=generated,
            jwt_ttl=_int(env, "PGBELL_JWT_TTL", 3600, 1, 30 * 24 * 3600),
            host=env.get("PGBELL_HOST") or "127.0.0.1",
            port=_int(env, "PGBELL_PORT", 8080, 0, 65535),
            max_body_bytes=_int(env, "PGBELL_MAX_BODY_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024),
            ws_max_frame_bytes=_int(
                env, "PGBELL_WS_MAX_FRAME_BYTES", 64 * 1024, 128, 16 * 1024 * 1024
            ),
            ws_heartbeat=_float(env, "PGBELL_WS_HEARTBEAT", 30.0, 1.0, 3600.0),
            send_queue_size=_int(env, "PGBELL_SEND_QUEUE_SIZE", 16384, 1, 1_000_000),
            poll_interval=_float(env, "PGBELL_POLL_INTERVAL", 5.0, 0.05, 3600.0),
            db_pool_max=_int(env, "PGBELL_DB_POOL_MAX", 10, 2, 1000),
            log_level=(env.get("PGBELL_LOG_LEVEL") or "INFO").upper(),
            log_format=(env.get("PGBELL_LOG_FORMAT") or "json").lower(),
            metrics_token=env.get("PGBELL_METRICS_TOKEN", ""),
            login_max_failures=_int(env, "PGBELL_LOGIN_MAX_FAILURES", 10, 1, 1_000_000),
            login_window=_float(env, "PGBELL_LOGIN_WINDOW", 300.0, 1.0, 86400.0),
            cors_origins=_origins(env.get("PGBELL_CORS_ORIGINS", "")),
            trusted_proxies=_proxies(env.get("PGBELL_TRUSTED_PROXIES", "")),
        )
        if values["log_format"] not in ("json", "text"):
            raise ConfigError("PGBELL_LOG_FORMAT must be json or text")
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
