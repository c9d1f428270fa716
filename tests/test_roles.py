"""Least privilege: pgbell_writer may call pgbell.notify() and nothing else
in the schema, pgbell_server is all `pgbell serve` needs, and PUBLIC may
run none of pgbell's functions, each of which pins its search_path."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql

from pgbell.sql import Q
from tests.support import add_user, login, next_frame, unique_name, with_login


@pytest.fixture
def login_role(pg_url: str) -> Iterator[Callable[[str], str]]:
    """make(member_of) -> the name of a new LOGIN role that is only a member
    of `member_of`; dropped after the test (roles belong to the cluster)."""
    made: list[str] = []

    def make(member_of: str) -> str:
        name = unique_name("pgbell_login")
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
                    sql.Identifier(name), sql.Identifier(member_of)
                )
            )
        made.append(name)
        return name

    yield make
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for name in made:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,)
            )
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


# Pure helpers that pgbell.notify calls for every notification, left without a
# SET clause so that they cost less (019_inline_helpers_v1.sql,
# 012_render_one_v2.sql): none is SECURITY DEFINER or executable by PUBLIC,
# and they run under the search_path that pgbell's SECURITY DEFINER callers pin.
UNPINNED_HELPERS = {
    "pgbell.action_url_ok_v1(text)",
    "pgbell.role_members(text)",
    "pgbell.render_one_v2(text,jsonb)",
}


def test_public_may_execute_no_pgbell_function_and_each_pins_its_search_path(database_url):
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            """
            SELECT p.oid::regprocedure::text,
                   p.proacl IS NULL
                   OR EXISTS (SELECT FROM aclexplode(p.proacl) a
                               WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'),
                   coalesce(array_to_string(p.proconfig, ','), ''),
                   p.prosecdef
              FROM pg_proc p WHERE p.pronamespace = 'pgbell'::regnamespace
            """
        ).fetchall()
    assert len(rows) >= 10
    public = [name for name, by_public, _, _ in rows if by_public]
    assert public == [], f"PUBLIC may execute: {public}"
    unpinned = [
        name for name, _, config, _ in rows if "search_path=pg_catalog, pg_temp" not in config
    ]
    assert sorted(unpinned) == sorted(UNPINNED_HELPERS), f"no pinned search_path: {unpinned}"
    definers = {name for name, _, _, definer in rows if definer}
    assert not definers & UNPINNED_HELPERS, "a SECURITY DEFINER function must pin its search_path"
    assert {
        "pgbell.notify(text,text[],text[],jsonb,pgbell.priority)",
        "pgbell.state_changes_v2()",
        "pgbell.wake_servers_v4()",
        "pgbell.wake_v2()",
        "pgbell.deal_created_v3()",
        "pgbell.notify_one_v2(text,text[],text[],jsonb,pgbell.priority,boolean)",
    } <= definers


def test_a_writer_can_notify_but_cannot_read_or_forge(database_url, login_role):
    writer = with_login(database_url, login_role("pgbell_writer"))
    add_user(database_url, "boss", ("manager",))
    with psycopg.connect(writer, autocommit=True) as conn:
        written = conn.execute(
            "SELECT pgbell.notify('deal_created', user_ids => '{u-1}', roles => '{manager}',"
            ' data => \'{"deal_id": 1, "title": "T", "amount": 1}\')'
        ).fetchone()[0]
        assert written == 2
        for statement in (
            "SELECT password_hash FROM pgbell.users",
            "SELECT * FROM pgbell.notifications",
            "INSERT INTO pgbell.notifications (user_id, kind, title) VALUES ('u-2', 'x', 'Forged')",
            "UPDATE pgbell.notifications SET title = 'Changed'",
            "SELECT * FROM pgbell.templates",
            "UPDATE pgbell.templates SET title = 'Phish'",
            "SELECT * FROM pgbell.role_members('manager')",
            "SELECT pgbell.render_v1('{a}', '{}')",
            "SELECT pgbell.grant_roles_v1()",
            "SELECT * FROM pgbell.rules",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    with psycopg.connect(database_url) as conn:
        titles = conn.execute("SELECT user_id, title FROM pgbell.notifications").fetchall()
    assert sorted(u for u, _ in titles) == sorted(["u-1", str(_boss_id(database_url))])
    assert all(t == "New deal: T" for _, t in titles)


def _boss_id(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT id FROM pgbell.users WHERE username = 'boss'").fetchone()[0]


async def test_pgbell_serve_needs_nothing_but_pgbell_server(
    database_url, login_role, start_server, http
):
    server_login = with_login(database_url, login_role("pgbell_server"))
    srv = await start_server(DATABASE_URL=server_login)
    ann = add_user(database_url, "ann")
    add_user(database_url, "boss", ("manager",))
    token = await login(http, srv.base, "ann")
    auth = {"Authorization": f"Bearer {token}"}
    ws = await http.ws_connect(f"{srv.ws_base}/ws?token={token}")
    await next_frame(ws, "snapshot", where="for ann over the server's login")

    # the demo's REST writer, as the server's login, notifies through the trigger
    async with http.post(
        f"{srv.base}/deals", json={"title": "Acme", "amount": 5}, headers=auth
    ) as r:
        assert r.status == 201, await r.text()
    frame = await next_frame(ws, "notification", where="after POST /deals")
    note_id = frame["notification"]["id"]

    await ws.send_json({"type": "read", "ids": [note_id]})
    assert (await next_frame(ws, "read", where="after a read over the socket"))["ids"] == [note_id]
    for method, path, body in (
        ("GET", "/notifications", None),
        ("POST", f"/notifications/{note_id}/archive", None),
        ("POST", "/notifications/read-all", None),
        ("GET", "/preferences", None),
        ("PUT", "/preferences", {"muted": False, "min_priority": "high", "kinds": {}}),
        ("GET", "/healthz", None),
        ("GET", "/metrics", None),
    ):
        async with http.request(method, srv.base + path, json=body, headers=auth) as r:
            assert r.status == 200, f"{method} {path}: {r.status} {await r.text()}"

    # the state_changes pruning the server runs in the background
    def prune() -> None:
        with psycopg.connect(server_login, autocommit=True, cursor_factory=psycopg.RawCursor) as c:
            c.execute(Q.prune_state_changes, (0.0,))

    await asyncio.to_thread(prune)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM pgbell.state_changes").fetchone()[0] == 0
        prefs = conn.execute("SELECT user_id, min_priority::text FROM pgbell.global_preferences")
        assert prefs.fetchall() == [(str(ann), "high")]
    await ws.close()
