"""GET /openapi.json: the REST API as an OpenAPI 3.1 document.

Written by hand next to the handlers it describes; tests/test_openapi.py
checks that every route of the app is here, that every path here is a
route, and that real answers validate against these schemas.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pgbell import __version__

PRIORITY = {"type": "string", "enum": ["low", "normal", "high", "urgent"]}
ID = {"type": "integer", "minimum": 1}
TIME = {"type": "string", "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


ERROR_BODY = _obj(
    ["code", "message"],
    code={
        "type": "string",
        "description": "invalid_credentials, unauthorized, token_expired, invalid_request,"
        " forbidden, not_found, payload_too_large, rate_limited, method_not_allowed,"
        " unavailable, internal_error",
    },
    message={"type": "string", "description": "Human text; names the field at fault."},
)

SCHEMAS: dict[str, Any] = {
    "Error": _obj(["error"], error=ERROR_BODY),
    "User": _obj(
        ["id", "username", "roles"],
        id=ID,
        username={"type": "string"},
        roles={"type": "array", "items": {"type": "string"}},
    ),
    "LoginRequest": _obj(
        ["username", "password"],
        username={"type": "string", "minLength": 1, "maxLength": 150},
        password={"type": "string", "minLength": 1, "maxLength": 1024},
    ),
    "LoginResponse": _obj(
        ["token", "token_type", "expires_in", "user"],
        token={"type": "string", "description": "HS256 JWT; send as Authorization: Bearer."},
        token_type={"const": "Bearer"},
        expires_in={"type": "integer", "description": "Seconds until the token expires."},
        user=_ref("User"),
    ),
    "Notification": _obj(
        ["id", "kind", "title", "body", "priority", "action_url", "data", "created_at", "read_at"],
        id=ID,
        kind={"type": "string"},
        title={"type": "string"},
        body={"type": "string"},
        priority=PRIORITY,
        action_url={"type": ["string", "null"]},
        data={"type": "object"},
        created_at=TIME,
        read_at={"type": ["string", "null"], "format": "date-time"},
    ),
    "NotificationPage": _obj(
        ["items", "unread_count", "next_before"],
        items={"type": "array", "items": _ref("Notification"), "description": "Newest first."},
        unread_count={"type": "integer", "minimum": 0},
        next_before={
            "type": ["integer", "null"],
            "description": "Pass as `before` for the next page; null on the last page.",
        },
    ),
    "UnreadCount": _obj(["unread_count"], unread_count={"type": "integer", "minimum": 0}),
    "NotificationChanged": _obj(
        ["notification", "unread_count"],
        notification=_ref("Notification"),
        unread_count={"type": "integer", "minimum": 0},
    ),
    "ReadAll": _obj(
        ["updated", "unread_count"],
        updated={"type": "integer", "minimum": 0},
        unread_count={"const": 0},
    ),
    "ArchiveRead": _obj(
        ["archived", "unread_count"],
        archived={"type": "integer", "minimum": 0},
        unread_count={"type": "integer", "minimum": 0},
    ),
    "DealCreate": _obj(
        ["title", "amount"],
        title={"type": "string", "minLength": 1, "maxLength": 200},
        amount={"type": "number", "minimum": 0, "maximum": 999_999_999_999.99},
        owner_id={**ID, "description": "Defaults to the caller."},
    ),
    "Deal": _obj(
        ["id", "title", "amount", "owner_id", "created_by", "created_at"],
        id=ID,
        title={"type": "string"},
        amount={"type": "number"},
        owner_id=ID,
        created_by={"type": ["integer", "null"], "description": "NULL for SQL writers."},
        created_at=TIME,
    ),
    "DealResponse": _obj(["deal"], deal=_ref("Deal")),
    "PaymentCreate": _obj(
        ["amount"],
        amount={"type": "number", "exclusiveMinimum": 0, "maximum": 999_999_999_999.99},
    ),
    "Payment": _obj(
        ["id", "deal_id", "amount", "created_at"],
        id=ID,
        deal_id=ID,
        amount={"type": "number"},
        created_by={"type": ["integer", "null"]},
        created_at=TIME,
    ),
    "PaymentResponse": _obj(["payment"], payment=_ref("Payment")),
    "KindPreference": _obj(
        ["muted", "min_priority"],
        muted={"type": "boolean"},
        min_priority={
            "anyOf": [PRIORITY, {"type": "null"}],
            "description": "null inherits the global minimum.",
        },
        default_priority={**PRIORITY, "readOnly": True},
        description={"type": ["string", "null"], "readOnly": True},
    ),
    "Preferences": _obj(
        ["muted", "min_priority", "kinds"],
        muted={"type": "boolean", "description": "Mute everything but urgent."},
        min_priority=PRIORITY,
        kinds={
            "type": "object",
            "additionalProperties": _ref("KindPreference"),
            "description": "Every known kind on GET; on PUT, a kind left out returns to"
            " the default. Unknown kinds are 422.",
        },
    ),
    "Health": _obj(
        ["status", "database", "listener"],
        status={"type": "string", "enum": ["ok", "unavailable"]},
        database={"type": "boolean"},
        listener={"type": "boolean"},
        error=ERROR_BODY,
    ),
    "Liveness": _obj(["status"], status={"const": "ok"}),
    "Readiness": _obj(
        ["status", "database", "listener", "draining"],
        status={"type": "string", "enum": ["ok", "unavailable"]},
        database={"type": "boolean"},
        listener={"type": "boolean"},
        draining={"type": "boolean", "description": "The server is shutting down."},
        error=ERROR_BODY,
    ),
}

_ERRORS = {
    "400": "The body is not a JSON object, or a path or query parameter is malformed"
    " or out of range (`invalid_request`, naming it).",
    "401": "Missing, malformed, badly signed, revoked or expired token (`unauthorized`,"
    " `token_expired`).",
    "403": "The demo's deals are for pgbell's own users and the token names another"
    " recipient, or the caller may not do this: only managers create deals for other"
    " owners, only a deal's owner and managers record its payments (`forbidden`).",
    "404": "Unknown id, or one that is not the caller's (`not_found`).",
    "404-demo": "Unknown id, a deal the caller may not see, or the demo is not installed"
    " in this database (`not_found`;"
    " `pgbell migrate --demo` installs it).",
    "404-login": "pgbell's own login is off: PGBELL_JWT_SECRET is not set and tokens come"
    " from the application (`not_found`).",
    "413": "The body is larger than PGBELL_MAX_BODY_BYTES (`payload_too_large`).",
    "422": "A field is missing, of the wrong type or out of range (`invalid_request`).",
    "429": "Too many failed logins for this username from this address, or from this"
    " address whatever the usernames (`rate_limited`), or too many logins already waiting"
    " for a password check; Retry-After says when to try again.",
    "429-deals": "More than PGBELL_DEALS_PER_MINUTE deals a minute by this user"
    " (`rate_limited`); Retry-After says when to try again.",
}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _op(
    summary: str,
    ok: tuple[str, str, str],
    errors: tuple[str, ...] = ("401",),
    body: str | None = None,
    params: list[dict[str, Any]] | None = None,
    auth: bool = True,
    description: str | None = None,
) -> dict[str, Any]:
    status, schema, what = ok
    op: dict[str, Any] = {"summary": summary, "responses": {status: _json(schema, what)}}
    if description:
        op["description"] = description
    for code in errors:
        op["responses"][code.partition("-")[0]] = _json("Error", _ERRORS[code])
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    if params:
        op["parameters"] = params
    if not auth:
        op["security"] = []
    return op


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


PATH_ID = {"name": "id", "in": "path", "required": True, "schema": ID}
WRITE = ("400", "401", "413", "422")


def _change_one(summary: str, frame: str) -> dict[str, Any]:
    return _op(
        summary,
        ("200", "NotificationChanged", "The notification and the new count."),
        errors=("400", "401", "404"),
        params=[PATH_ID],
        description=f"Every socket of the user receives a `{frame}` frame.",
    )


DEMO = (
    "The demo domain (`pgbell migrate --demo`), for pgbell's own users: the token's user"
    " must be one of them."
)

PATHS: dict[str, Any] = {
    "/auth/login": {
        "post": _op(
            "Exchange a username and password for a token",
            ("200", "LoginResponse", "A token for the user."),
            errors=("400", "401", "404-login", "413", "422", "429"),
            body="LoginRequest",
            auth=False,
            description="pgbell's own users (standalone mode and the demo); an application"
            " that issues its own tokens does not need it."
            " Unknown user and wrong password get the same 401 invalid_credentials."
            " After PGBELL_LOGIN_MAX_FAILURES failures within PGBELL_LOGIN_WINDOW seconds for one"
            " username from one address, 429 until the window has passed.",
        )
    },
    "/notifications": {
        "get": _op(
            "The caller's notifications, newest first",
            ("200", "NotificationPage", "One page."),
            errors=("400", "401"),
            params=[
                _query("unread", {"type": "boolean"}, "Only unread ones."),
                _query(
                    "limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, ""
                ),
                _query("before", ID, "Only ids below this one (from next_before)."),
            ],
        )
    },
    "/notifications/unread-count": {
        "get": _op("The caller's unread count", ("200", "UnreadCount", "The count."))
    },
    "/notifications/{id}/read": {"post": _change_one("Mark one notification read", "read")},
    "/notifications/read-all": {
        "post": _op("Mark every notification read", ("200", "ReadAll", "How many changed."))
    },
    "/notifications/{id}/archive": {
        "post": _change_one(
            "Archive one notification (leaves the list and the unread count)", "archived"
        )
    },
    "/notifications/archive-read": {
        "post": _op(
            "Archive every read notification", ("200", "ArchiveRead", "How many were archived.")
        )
    },
    "/deals": {
        "post": _op(
            "Create a deal (notifies its owner and every manager)",
            ("201", "DealResponse", "The deal."),
            errors=(*WRITE, "403", "404-demo", "429-deals"),
            body="DealCreate",
            description=DEMO,
        )
    },
    "/deals/{id}": {
        "get": _op(
            "One deal",
            ("200", "DealResponse", "The deal."),
            errors=("400", "401", "403", "404-demo"),
            params=[PATH_ID],
            description=DEMO
            + " A browser asking for text/html without a token gets the client page.",
        )
    },
    "/deals/{id}/payments": {
        "post": _op(
            "Record a payment (notifies the deal's owner, priority high)",
            ("201", "PaymentResponse", "The payment."),
            errors=("400", "401", "403", "404-demo", "413", "422"),
            body="PaymentCreate",
            params=[PATH_ID],
            description=DEMO,
        )
    },
    "/preferences": {
        "get": _op("The caller's preferences", ("200", "Preferences", "The whole document.")),
        "put": _op(
            "Replace the caller's preferences",
            ("200", "Preferences", "The stored document."),
            errors=WRITE,
            body="Preferences",
            description="Urgent notifications bypass every mute.",
        ),
    },
    "/healthz": {
        "get": {
            "summary": "Can this server reach the database, and is its listener connected?",
            "description": "Kept for compatibility: /livez (liveness) and /readyz (readiness,"
            " which also fails during shutdown) are what probes should use.",
            "security": [],
            "responses": {
                "200": _json("Health", "Healthy."),
                "503": _json("Health", "The database or the listener is not connected."),
            },
        }
    },
    "/livez": {
        "get": {
            "summary": "Is this process running? (a liveness probe)",
            "description": "200 while the process runs its event loop; it asks nothing of the"
            " database, so a database outage does not get the process restarted.",
            "security": [],
            "responses": {"200": _json("Liveness", "The process runs.")},
        }
    },
    "/readyz": {
        "get": {
            "summary": "Should clients be sent here? (a readiness probe)",
            "description": "200 when the database answers and the listener is connected."
            " 503 when either is not, and from the moment the server begins to shut down"
            " (SIGTERM; for PGBELL_SHUTDOWN_DRAIN seconds before it closes anything), so that"
            " a load balancer stops sending it clients first.",
            "security": [],
            "responses": {
                "200": _json("Readiness", "Ready."),
                "503": _json(
                    "Readiness", "The database or the listener is not connected, or draining."
                ),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics",
            "description": "Open unless PGBELL_METRICS_TOKEN is set; then that bearer token.",
            "security": [],
            "responses": {
                "200": {
                    "description": "Prometheus text format 0.0.4.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "401": _json("Error", "PGBELL_METRICS_TOKEN is set and was not given."),
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "security": [],
            "responses": {
                "200": {
                    "description": "OpenAPI 3.1.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    },
    "/ws": {
        "get": {
            "summary": "The WebSocket: snapshot, live notification and read frames",
            "description": "Token as `?token=` or `Authorization: Bearer`; `?since=<id>`"
            " resumes. A bad or expired token completes the handshake and is closed"
            " with 4401; one socket more than PGBELL_MAX_SOCKETS_PER_USER for one user is"
            " closed with 4429. Frames are described in docs/protocol.md.",
            "security": [],
            "parameters": [
                _query("token", {"type": "string"}, "The JWT (browsers)."),
                _query("since", {"type": "integer", "minimum": 0}, "Last notification id seen."),
            ],
            "responses": {
                "101": {"description": "Switching to the WebSocket protocol."},
                "400": _json(
                    "Error",
                    "Not a WebSocket handshake: a plain GET, without `Upgrade: websocket`"
                    " (`invalid_request`).",
                ),
                "403": _json(
                    "Error",
                    "PGBELL_CORS_ORIGINS is set and the browser's Origin is neither listed"
                    " nor this server's own (`forbidden`).",
                ),
            },
        }
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "pgbell",
        "version": __version__,
        "description": "Real-time notifications with PostgreSQL as the message bus."
        ' Every error answer is {"error": {"code", "message"}}; any call may answer'
        " 503 `unavailable` with Retry-After while the database is unreachable.",
        "license": {"name": "MIT", "identifier": "MIT"},
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "pgbell's own login token, or one the application issued"
                " (PGBELL_JWT_SECRET, PGBELL_JWT_PUBLIC_KEY or PGBELL_JWT_JWKS_URL); the"
                " recipient is its PGBELL_JWT_USER_CLAIM (default sub), as text.",
            }
        },
    },
}


async def serve(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)
