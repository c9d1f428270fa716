"""GET /deals/{id}: the action_url of a notification. A browser gets the
client page, an API client JSON, and caches are told the two differ."""

from __future__ import annotations

import asyncio

from tests.support import add_user, insert_deal, login


async def test_browser_gets_the_page_api_client_gets_json(server, http, database_url):
    owner = add_user(database_url, "pager")
    deal_id = await asyncio.to_thread(insert_deal, database_url, "Paged", owner)
    url = f"{server.base}/deals/{deal_id}"

    async with http.get(url, headers={"Accept": "text/html,application/xhtml+xml"}) as r:
        assert r.status == 200
        assert r.content_type == "text/html"
        assert 'data-testid="login-username"' in await r.text()
        assert {"Accept", "Authorization"} <= {v.strip() for v in r.headers["Vary"].split(",")}
        assert r.headers["Cache-Control"] == "no-cache"

    token = await login(http, server.base, "pager")
    async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200
        body = await r.json()
        assert body["deal"]["id"] == deal_id and body["deal"]["title"] == "Paged"
        assert "Accept" in r.headers["Vary"]

    # without a token and without asking for HTML, it is an API call
    async with http.get(url) as r:
        assert r.status == 401
        assert (await r.json())["error"]["code"] == "unauthorized"
