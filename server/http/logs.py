"""Structured logs: one JSON object per line, never a token or a password.

Access-log lines carry the request id and user id; `token=` in a query
string is redacted before anything is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from pgbell.http import keys
from pgbell.http.proxies import client_address

_TOKEN_IN_QUERY = re.compile(r"(?i)(token=)[^&\s]*")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def redact(text: str) -> str:
    return _TOKEN_IN_QUERY.sub(r"\1[redacted]", text)


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
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
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
                "path": redact(request.path_qs),
                "status": response.status,
                "duration_ms": round(time * 1000, 2),
                "remote": client_address(request),
            },
        )
