"""The one error shape: {"error": {"code": "<snake_case>", "message": "..."}}.

Handlers raise ApiError; the middleware turns it, aiohttp's own HTTP errors
(unknown route, wrong method, body too large) and any crash into that shape,
so no answer is ever an HTML page and no bad input reaches a 5xx.
"""

from __future__ import annotations

import logging

import asyncpg
from aiohttp import web

log = logging.getLogger(__name__)

# The database is down, restarting, refusing connections or cut us off.
DATABASE_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.ConnectionFailureError,
    # asyncpg's state error on a connection whose backend was just killed
    asyncpg.InternalClientError,
)


def database_unavailable(e: BaseException) -> bool:
    if isinstance(e, DATABASE_UNAVAILABLE):
        return True
    # 55000, raised at connect time by a database with ALLOW_CONNECTIONS false
    return isinstance(e, asyncpg.ObjectNotInPrerequisiteStateError) and (
        "not currently accepting connections" in str(e)
    )


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def invalid(field: str, message: str, status: int = 422) -> ApiError:
    return ApiError(status, "invalid_request", f"{field}: {message}")


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, "not_found", f"no such {what}")


_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    429: "rate_limited",
}


def _detail(e: web.HTTPException) -> str:
    """aiohttp's own explanation when it gave one (a WebSocket handshake that
    is not one, say), else the status's reason phrase."""
    text = " ".join((e.text or "").split())
    if not text or text.startswith(f"{e.status}:"):
        return e.reason
    return text[:200]


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except ApiError as e:
        return error_response(e.status, e.code, e.message)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = _HTTP_CODES.get(e.status, "http_error")
        message = {
            404: f"no route for {request.method} {request.path}",
            405: f"{request.method} is not allowed on {request.path}",
            413: "the request body is too large",
        }.get(e.status, _detail(e))
        response = error_response(e.status, code, message)
        if e.status == 405 and "Allow" in e.headers:
            response.headers["Allow"] = e.headers["Allow"]
        return response
    except Exception as e:
        if not database_unavailable(e):
            log.exception("unhandled error", extra={"path": request.path})
            return error_response(500, "internal_error", "the server failed; the error was logged")
        # An outage is not the client's fault, nor a crash: 503, try again.
        log.warning("database unavailable", extra={"path": request.path, "error": repr(e)})
        response = error_response(
            503, "unavailable", "the database is unreachable; try again shortly"
        )
        response.headers["Retry-After"] = "5"
        return response
