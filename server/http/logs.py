"""Structured logs: one JSON object per line, never a token or a password.

Access-log lines carry the request id and user id. Their query strings keep
the values of a few known, harmless parameters and redact every other
value: aiohttp decodes query keys, so `?%74oken=` authenticates a socket as
`?token=` does, and no pattern over the raw text can know every spelling.
Every line, access log or not, also goes through redact(), which removes
`token=` values (percent-encoded letters included) and anything shaped
like a JWT.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from urllib.parse import unquote_plus

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from pgbell.http import keys
from pgbell.http.proxies import client_address

# `token=` with any of its letters (or the `=`) percent-encoded, any case
_TOKEN_IN_QUERY = re.compile(
    r"(?i)((?:t|%74)(?:o|%6f)(?:k|%6b)(?:e|%65)(?:n|%6e)(?:=|%3d))[^&\s\"]*"
)
# header.payload[.signature] of a JWT: its header always starts {" (eyJ)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
REDACTED = "[redacted]"

# Query parameters whose values the access log keeps: ids, counts, flags.
_LOGGED_PARAMS = frozenset({"since", "limit", "before", "unread"})
# a key or kept value is logged only if it is this plain and this short
_PLAIN = re.compile(r"[A-Za-z0-9_.-]{1,32}")


def redact(text: str) -> str:
    return _JWT.sub(REDACTED, _TOKEN_IN_QUERY.sub(rf"\1{REDACTED}", text))


def _param(piece: str) -> str:
    raw_key, sep, raw_value = piece.partition("=")
    key = unquote_plus(raw_key)
    if not _PLAIN.fullmatch(key):
        return REDACTED
    if not sep:
        return key
    value = unquote_plus(raw_value)
    if key in _LOGGED_PARAMS and (value == "" or _PLAIN.fullmatch(value)):
        return f"{key}={value}"
    return f"{key}={REDACTED}"


def loggable_target(request: web.BaseRequest) -> str:
    """The request's path and query as the access log shows them: keys as
    the server read them (decoded), the values of _LOGGED_PARAMS when plain,
    every other value redacted, whatever its key or however it is spelled."""
    url = request.rel_url
    path = redact(url.raw_path)
    query = url.raw_query_string
    if not query:
        return path
    # split on ; as well as &: a piece split too finely only loses values
    pieces = [p for p in re.split(r"[&;]", query) if p]
    return path + "?" + "&".join(_param(p) for p in pieces)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """The human format, redacted like the JSON one."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _WorkerField(logging.Filter):
    """Stamps the worker index on every record (the `worker` field of a JSON
    line), so the lines of several worker processes on one stderr can be
    told apart."""

    def __init__(self, worker: int) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.worker
        return True


def setup(level: str = "INFO", fmt: str = "json", worker: int | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        who = "" if worker is None else " worker %(worker)s"
        handler.setFormatter(TextFormatter(f"%(asctime)s %(levelname)s{who} %(name)s: %(message)s"))
    if worker is not None:
        handler.addFilter(_WorkerField(worker))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class AccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "request",
            extra={
                "request_id": request.get(keys.REQUEST_ID),
                "user_id": request.get(keys.USER_ID),
                "method": request.method,
                "path": loggable_target(request),
                "status": response.status,
                "duration_ms": round(time * 1000, 2),
                "remote": client_address(request),
            },
        )
