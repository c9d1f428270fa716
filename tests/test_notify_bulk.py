"""pgbell.notify_many: a statement's events in one INSERT, the same rows as
one pgbell.notify per event, and best_effort for triggers."""

from __future__ import annotations

import json

import psycopg
import pytest

from tests.support import add_user

# counts the INSERT statements into pgbell.notifications and their rows
COUNT_STATEMENTS = """
CREATE TABLE public.inserts (rows bigint);
CREATE FUNCTION public.count_inserts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.inserts SELECT count(*) FROM new_rows;
    RETURN NULL;
END $$;
CREATE TRIGGER count_inserts AFTER INSERT ON pgbell.notifications
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION public.count_inserts();
"""
COLUMNS = "user_id, kind, title, body, priority::text, action_url, data"


def test_a_bulk_insert_of_deals_is_one_insert_into_notifications(database_url):
    owners = [add_user(database_url, f"owner{i}") for i in range(3)]
    add_user(database_url, "boss", ("manager",))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(COUNT_STATEMENTS)
        conn.execute(
            "INSERT INTO deals (title, amount, owner_id)"
            " SELECT 'Bulk ' || g, g, (%s::bigint[])[1 + g %% 3] FROM generate_series(1, 1000) g",
            (owners,),
        )
        statements = conn.execute("SELECT rows FROM public.inserts").fetchall()
        per_deal = conn.execute(
            "SELECT count(*) FROM pgbell.notifications GROUP BY (data->>'deal_id') HAVING count(*) <> 2"
        ).fetchall()
    assert statements == [(2000,)], "1,000 deals must be one INSERT of 2,000 rows"
    assert per_deal == [], "every deal reaches its owner and the manager"


def test_notify_many_writes_what_notify_writes_event_by_event(database_url):
    a = add_user(database_url, "a", ("auditor",))
    b = add_user(database_url, "b", ("auditor",))
    events = [
        {"user_ids": [str(a), None], "data": {"deal_id": 1, "title": "One", "amount": 1.5}},
        {"roles": ["auditor"], "user_ids": [str(a)], "data": {"deal_id": 2}},
        {"user_ids": [b], "data": {"title": "Three", "amount": "n/a", "deal_id": 3}},
        {},
    ]
    with psycopg.connect(database_url, autocommit=True) as conn:
        written = conn.execute(
            "SELECT pgbell.notify_many('deal_created', %s, 'high')", (json.dumps(events),)
        ).fetchone()[0]
        many = conn.execute(f"SELECT {COLUMNS} FROM pgbell.notifications ORDER BY id").fetchall()
        problems = conn.execute(
            "SELECT field, missing, seen FROM pgbell.template_problems ORDER BY field, missing"
        ).fetchall()
        conn.execute("TRUNCATE pgbell.notifications, pgbell.template_problems")
        for e in events:
            ids = [None if i is None else str(i) for i in e.get("user_ids", [])] or None
            conn.execute(
                "SELECT pgbell.notify('deal_created', %s, %s, %s, 'high')",
                (ids, e.get("roles"), json.dumps(e.get("data", {}))),
            )
        one_by_one = conn.execute(
            f"SELECT {COLUMNS} FROM pgbell.notifications ORDER BY id"
        ).fetchall()
        problems_one_by_one = conn.execute(
            "SELECT field, missing, seen FROM pgbell.template_problems ORDER BY field, missing"
        ).fetchall()
    assert written == len(many) == 4
    assert many == one_by_one
    assert problems == problems_one_by_one


@pytest.mark.parametrize(
    "events",
    [
        '{"user_ids": ["1"]}',
        "[1]",
        '[{"user_ids": "1"}]',
        '[{"user_ids": [{"id": 1}]}]',
        '[{"roles": [1]}]',
    ],
)
def test_malformed_events_are_the_callers_error(database_url, events):
    with psycopg.connect(database_url) as conn:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="pgbell.notify_many"):
            conn.execute("SELECT pgbell.notify_many('deal_created', %s)", (events,))


def test_best_effort_warns_and_skips_what_strict_refuses(database_url):
    ok = add_user(database_url, "ok")
    events = json.dumps([{"user_ids": ["", str(ok), "x" * 256], "data": {"title": "T"}}])
    warnings: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.add_notice_handler(lambda d: warnings.append(d.message_primary))
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="1 to 255 characters"):
            conn.execute("SELECT pgbell.notify_many('deal_created', %s)", (events,))
        assert conn.execute(
            "SELECT pgbell.notify_many('deal_created', %s, best_effort => true)", (events,)
        ).fetchone() == (1,)
        assert conn.execute(
            "SELECT pgbell.notify_many('gone', '[{}]', best_effort => true)"
        ).fetchone() == (0,)
        assert conn.execute("SELECT pgbell.notify_many('gone', '[]')").fetchone() == (0,)
        recipients = conn.execute("SELECT user_id FROM pgbell.notifications").fetchall()
    assert recipients == [(str(ok),)]
    assert any("2 recipient ids are empty or longer than 255" in w for w in warnings), warnings
    assert any("gone notifications not written" in w for w in warnings), warnings
