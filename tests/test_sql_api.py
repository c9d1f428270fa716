"""pgbell.notify(): templates, role targeting and preferences, in SQL alone."""

from __future__ import annotations

import json

import psycopg
import pytest

from tests.support import add_user


def _notify(url: str, sql: str, params: tuple = ()) -> tuple[int, list[str]]:
    """Run a pgbell.notify call as a SQL writer; returns (rows, warnings)."""
    warnings: list[str] = []
    with psycopg.connect(url) as conn:
        conn.add_notice_handler(lambda d: warnings.append(d.message_primary))
        written = conn.execute(sql, params).fetchone()[0]
    return written, warnings


def _rows(url: str, kind: str | None = None) -> list[dict]:
    with psycopg.connect(url, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(
            "SELECT user_id, kind, title, body, priority::text, action_url, data"
            " FROM pgbell.notifications WHERE %(k)s::text IS NULL OR kind = %(k)s ORDER BY id",
            {"k": kind},
        ).fetchall()


def _sql(url: str, statement: str, params: tuple = ()) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement, params)


def test_template_renders_title_body_and_url_from_data(database_url):
    uid = add_user(database_url, "ann")
    data = {"deal_id": 7, "title": "Acme", "amount": 1234567.5}
    written, warnings = _notify(
        database_url,
        "SELECT pgbell.notify('deal_created', user_ids => %s, data => %s)",
        ([str(uid)], json.dumps(data)),
    )
    assert (written, warnings) == (1, [])
    [row] = _rows(database_url)
    assert row["title"] == "New deal: Acme"
    assert row["body"] == "Acme, 1,234,567.50"
    assert row["action_url"] == "/deals/7"
    assert row["priority"] == "normal" and row["data"] == data


def test_missing_placeholder_stays_visible_is_reported_and_the_write_commits(database_url):
    uid = add_user(database_url, "ann")
    written, warnings = _notify(
        database_url,
        "SELECT pgbell.notify('deal_created', user_ids => %s, data => '{\"deal_id\": 3}')",
        ([str(uid)],),
    )
    assert written == 1
    [row] = _rows(database_url)
    assert row["title"] == "New deal: {title}"
    assert row["body"] == "{title}, {amount:money}"
    assert any("no data for title" in w for w in warnings), warnings
    with psycopg.connect(database_url) as conn:
        problems = conn.execute(
            "SELECT field, missing, seen FROM pgbell.template_problems ORDER BY field"
        ).fetchall()
    assert problems == [("body", ["title", "amount"], 1), ("title", ["title"], 1)]


def test_changing_a_template_is_an_update(database_url):
    uid = add_user(database_url, "ann")
    _sql(
        database_url,
        "UPDATE pgbell.templates SET title = 'Deal {title} is in', priority = 'high' WHERE kind = 'deal_created'",
    )
    _sql(database_url, "INSERT INTO deals (title, amount, owner_id) VALUES ('Acme', 1, %s)", (uid,))
    [row] = _rows(database_url)
    assert (row["title"], row["priority"]) == ("Deal Acme is in", "high")


def test_roles_reach_exactly_their_members_once(database_url):
    a = add_user(database_url, "a", ("auditor",))
    b = add_user(database_url, "b", ("auditor", "manager"))
    add_user(database_url, "c", ("manager",))
    add_user(database_url, "d")
    _sql(database_url, "INSERT INTO pgbell.templates (kind, title) VALUES ('audit', 'Audit {n}')")
    # b is named and has the role: still one row
    written, _ = _notify(
        database_url,
        "SELECT pgbell.notify('audit', user_ids => %s, roles => '{auditor}', data => '{\"n\": 1}')",
        ([str(b)],),
    )
    assert written == 2
    assert {r["user_id"] for r in _rows(database_url, "audit")} == {str(a), str(b)}


def test_unknown_kind_is_the_callers_error(database_url):
    with psycopg.connect(database_url) as conn:
        with pytest.raises(
            psycopg.errors.InvalidParameterValue, match="unknown notification kind 'nope'"
        ):
            conn.execute("SELECT pgbell.notify('nope', user_ids => '{1}')")


def test_a_deleted_template_never_fails_the_writers_insert(database_url):
    uid = add_user(database_url, "ann")
    _sql(database_url, "DELETE FROM pgbell.templates WHERE kind = 'deal_created'")
    warnings: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.add_notice_handler(lambda d: warnings.append(d.message_primary))
        conn.execute("INSERT INTO deals (title, amount, owner_id) VALUES ('Acme', 1, %s)", (uid,))
        assert conn.execute("SELECT count(*) FROM deals").fetchone()[0] == 1
    assert any("deal_created notifications not written" in w for w in warnings), warnings
    assert _rows(database_url) == []


@pytest.mark.parametrize(
    ("setup", "priority", "delivered"),
    [
        (
            "INSERT INTO pgbell.preferences (user_id, kind, muted) VALUES (%(u)s, 'deal_created', true)",
            None,
            False,
        ),
        (
            "INSERT INTO pgbell.preferences (user_id, kind, muted) VALUES (%(u)s, 'deal_created', true)",
            "urgent",
            True,
        ),
        (
            "INSERT INTO pgbell.global_preferences (user_id, muted) VALUES (%(u)s, true)",
            "high",
            False,
        ),
        (
            "INSERT INTO pgbell.global_preferences (user_id, muted) VALUES (%(u)s, true)",
            "urgent",
            True,
        ),
        (
            "INSERT INTO pgbell.global_preferences (user_id, min_priority) VALUES (%(u)s, 'high')",
            "normal",
            False,
        ),
        (
            "INSERT INTO pgbell.global_preferences (user_id, min_priority) VALUES (%(u)s, 'high')",
            "high",
            True,
        ),
        # a kind's own floor wins over the global one, both ways
        (
            "INSERT INTO pgbell.global_preferences (user_id, min_priority) VALUES (%(u)s, 'high');"
            "INSERT INTO pgbell.preferences (user_id, kind, min_priority) VALUES (%(u)s, 'deal_created', 'low')",
            "normal",
            True,
        ),
        (
            "INSERT INTO pgbell.preferences (user_id, kind, min_priority) VALUES (%(u)s, 'deal_created', 'urgent')",
            "high",
            False,
        ),
    ],
    ids=[
        "kind-muted",
        "kind-muted-urgent",
        "all-muted",
        "all-muted-urgent",
        "floor-high-normal",
        "floor-high-high",
        "kind-floor-lowers-global",
        "kind-floor-urgent",
    ],
)
def test_preferences_filter_in_the_database(database_url, setup, priority, delivered):
    uid = add_user(database_url, "ann")
    other = add_user(database_url, "bob")
    with psycopg.connect(database_url, autocommit=True) as conn:
        for statement in setup.split(";"):
            conn.execute(statement, {"u": str(uid)})
    written, _ = _notify(
        database_url,
        'SELECT pgbell.notify(\'deal_created\', user_ids => %s, data => \'{"title": "T", "amount": 1,'
        ' "deal_id": 1}\', priority => %s)',
        ([str(uid), str(other)], priority),
    )
    recipients = [r["user_id"] for r in _rows(database_url)]
    assert (str(uid) in recipients) is delivered
    assert str(other) in recipients, (
        "another user's preferences must not change this user's delivery"
    )
    assert written == len(recipients)


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("/deals/{n}", True),
        ("/", True),
        ("https://app.example.com/deals/{n}", True),
        ("http://app.example.com", True),
        ("javascript:alert({n})", False),
        ("JavaScript:alert(1)", False),
        ("data:text/html,<script>alert(1)</script>", False),
        ("//evil.example/{n}", False),
        ("/\\evil.example", False),
        ("https://user:pw@evil.example/", False),
        ("https://app.example.com/\u0001x", False),  # a control character
        ("deals/{n}", False),
        ("ftp://files.example.com/x", False),
    ],
)
def test_only_relative_paths_and_http_urls_are_stored_as_action_url(database_url, url, stored):
    """An action_url ends up behind a click: anything but a relative path or a
    plain http(s) URL is stored as NULL and reported, never blocked only by
    the client."""
    uid = add_user(database_url, "ann")
    _sql(
        database_url,
        "INSERT INTO pgbell.templates (kind, title, action_url) VALUES ('link', 'L', %s)",
        (url,),
    )
    written, warnings = _notify(
        database_url,
        "SELECT pgbell.notify('link', user_ids => %s, data => '{\"n\": 7}')",
        ([str(uid)],),
    )
    assert written == 1
    [row] = _rows(database_url, "link")
    if stored:
        assert row["action_url"] == url.replace("{n}", "7")
        assert warnings == []
    else:
        assert row["action_url"] is None
        assert any("not a relative path or an http(s) URL" in w for w in warnings), warnings
        with psycopg.connect(database_url) as conn:
            problem = conn.execute(
                "SELECT problem FROM pgbell.template_problems WHERE kind = 'link'"
            ).fetchone()
        assert problem == ("invalid_action_url",)
