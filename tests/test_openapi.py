"""/openapi.json: a valid OpenAPI 3.1 document that matches the app's routes
and the real answers of a real server."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import jsonschema
from openapi_spec_validator import validate as validate_spec

from tests.support import add_user, insert_deal, login


async def _document(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with http.get(f"{base}/openapi.json") as r:
        assert r.status == 200, await r.text()
        assert r.content_type == "application/json"
        return await r.json()


def _routes(app) -> set[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        path = route.resource.canonical
        if route.method == "HEAD" or path == "/" or path.startswith("/static"):
            continue
        found.add((route.method.lower(), path))
    return found


async def test_document_is_valid_openapi_3_1(server, http):
    doc = await _document(http, server.base)
    assert doc["openapi"].startswith("3.1")
    validate_spec(doc)  # raises, naming the fault, on an invalid document


async def test_every_route_is_documented_and_every_documented_route_exists(server, http):
    doc = await _document(http, server.base)
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    routes = _routes(server.pgbell_app)
    assert routes - documented == set(), "routes missing from /openapi.json"
    assert documented - routes == set(), "documented routes the server does not have"
    # the contract's calls, by name, so a route cannot leave both at once
    for call in [
        ("post", "/auth/login"),
        ("get", "/notifications"),
        ("get", "/notifications/unread-count"),
        ("post", "/notifications/{id}/read"),
        ("post", "/notifications/read-all"),
        ("post", "/deals"),
        ("post", "/deals/{id}/payments"),
        ("get", "/healthz"),
    ]:
        assert call in documented, f"{call} is in PROTOCOL.md but not documented"


class Checker:
    """Validates a real answer against the documented response schema of
    its operation and status; an undocumented status fails."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.checked: list[tuple[str, str, int]] = []

    async def check(self, method: str, path: str, response: aiohttp.ClientResponse) -> Any:
        op = self.doc["paths"][path][method]
        status = str(response.status)
        assert status in op["responses"], f"{method} {path} answered undocumented {status}"
        body = await response.json()
        content = op["responses"][status]["content"]["application/json"]
        schema = {**content["schema"], "components": self.doc["components"]}
        jsonschema.Draft202012Validator(schema).validate(body)
        self.checked.append((method, path, response.status))
        return body


async def test_real_answers_match_the_documented_schemas(server, http, database_url):
    doc = await _document(http, server.base)
    c = Checker(doc)
    me = add_user(database_url, "schema_user")
    other = add_user(database_url, "schema_other")
    b = server.base

    async with http.post(
        f"{b}/auth/login", json={"username": "schema_user", "password": "pw"}
    ) as r:
        token = (await c.check("post", "/auth/login", r))["token"]
    async with http.post(
        f"{b}/auth/login", json={"username": "schema_user", "password": "no"}
    ) as r:
        await c.check("post", "/auth/login", r)
    auth = {"Authorization": f"Bearer {token}"}

    async with http.post(f"{b}/deals", json={"title": "Schema", "amount": 10}, headers=auth) as r:
        deal = (await c.check("post", "/deals", r))["deal"]
    async with http.post(f"{b}/deals", json={"title": "", "amount": 10}, headers=auth) as r:
        await c.check("post", "/deals", r)
    async with http.post(f"{b}/deals", data=b"{not json", headers=auth) as r:
        await c.check("post", "/deals", r)
    async with http.post(f"{b}/deals", data=b"x" * (200 * 1024), headers=auth) as r:
        await c.check("post", "/deals", r)
    async with http.get(f"{b}/deals/{deal['id']}", headers=auth) as r:
        await c.check("get", "/deals/{id}", r)
    async with http.get(f"{b}/deals/999999", headers=auth) as r:
        await c.check("get", "/deals/{id}", r)
    async with http.post(f"{b}/deals/{deal['id']}/payments", json={"amount": 5}, headers=auth) as r:
        await c.check("post", "/deals/{id}/payments", r)
    await asyncio.to_thread(insert_deal, database_url, "Other's", other)

    async with http.get(f"{b}/notifications?limit=1", headers=auth) as r:
        page = await c.check("get", "/notifications", r)
    assert page["items"] and page["next_before"] is not None, page
    async with http.get(f"{b}/notifications?limit=0", headers=auth) as r:
        await c.check("get", "/notifications", r)
    async with http.get(f"{b}/notifications") as r:
        await c.check("get", "/notifications", r)
    async with http.get(f"{b}/notifications/unread-count", headers=auth) as r:
        await c.check("get", "/notifications/unread-count", r)
    note_id = page["items"][0]["id"]
    async with http.post(f"{b}/notifications/{note_id}/read", headers=auth) as r:
        await c.check("post", "/notifications/{id}/read", r)
    async with http.post(f"{b}/notifications/999999/read", headers=auth) as r:
        await c.check("post", "/notifications/{id}/read", r)
    async with http.post(f"{b}/notifications/abc/read", headers=auth) as r:
        await c.check("post", "/notifications/{id}/read", r)
    async with http.post(f"{b}/notifications/read-all", headers=auth) as r:
        await c.check("post", "/notifications/read-all", r)
    async with http.post(f"{b}/notifications/{note_id}/archive", headers=auth) as r:
        await c.check("post", "/notifications/{id}/archive", r)
    async with http.post(f"{b}/notifications/archive-read", headers=auth) as r:
        await c.check("post", "/notifications/archive-read", r)

    async with http.get(f"{b}/preferences", headers=auth) as r:
        prefs = await c.check("get", "/preferences", r)
    prefs["kinds"]["deal_created"]["muted"] = True
    async with http.put(f"{b}/preferences", json=prefs, headers=auth) as r:
        await c.check("put", "/preferences", r)
    async with http.put(
        f"{b}/preferences", json={**prefs, "kinds": {"no_such_kind": {}}}, headers=auth
    ) as r:
        await c.check("put", "/preferences", r)
    async with http.get(f"{b}/healthz") as r:
        await c.check("get", "/healthz", r)

    statuses = {s for _, _, s in c.checked}
    assert {200, 201, 400, 401, 404, 413, 422} <= statuses, c.checked
    assert me != other
    # a schema that accepts anything would make this test pass vacuously
    bad = {**doc["components"]["schemas"]["Deal"], "components": doc["components"]}
    assert not jsonschema.Draft202012Validator(bad).is_valid({"deal": deal})
    assert jsonschema.Draft202012Validator(bad).is_valid(deal)


async def test_rate_limits_and_a_plain_get_on_ws_are_documented(start_server, http, database_url):
    """Answers a fuzzer meets off the happy paths: 429 from the login throttle
    and from the demo's deal limit, 400 for a GET on /ws that is not a
    WebSocket handshake."""
    server = await start_server(PGBELL_LOGIN_MAX_FAILURES="1", PGBELL_DEALS_PER_MINUTE="1")
    doc = await _document(http, server.base)
    c = Checker(doc)
    add_user(database_url, "limited")
    add_user(database_url, "limited_other")
    b = server.base

    for _ in range(2):
        async with http.post(
            f"{b}/auth/login", json={"username": "limited", "password": "no"}
        ) as r:
            await c.check("post", "/auth/login", r)
    async with http.post(f"{b}/auth/login", json={"username": "limited", "password": "pw"}) as r:
        throttled = await c.check("post", "/auth/login", r)
    assert r.status == 429 and throttled["error"]["code"] == "rate_limited", throttled

    token = await login(http, b, "limited_other")
    auth = {"Authorization": f"Bearer {token}"}
    for _ in range(2):
        async with http.post(f"{b}/deals", json={"title": "Mine", "amount": 1}, headers=auth) as r:
            await c.check("post", "/deals", r)
    async with http.get(f"{b}/ws") as r:
        await c.check("get", "/ws", r)

    assert {(p, s) for _, p, s in c.checked} >= {
        ("/auth/login", 401),
        ("/auth/login", 429),
        ("/deals", 201),
        ("/deals", 429),
        ("/ws", 400),
    }, c.checked
