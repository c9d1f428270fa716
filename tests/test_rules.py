"""DBA operations: `pgbell rules` lists, disables and enables triggers."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg

from tests.support import add_user


def pgbell(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_URL=url)
    return subprocess.run(
        [sys.executable, "-m", "pgbell", *args], env=env, capture_output=True, text=True, timeout=60
    )


def _notifications(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM pgbell.notifications").fetchone()[0]


def _deal(url: str, owner: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO deals (title, amount, owner_id) VALUES ('X', 1, %s)", (owner,))


def test_rules_lists_every_trigger_from_the_catalog(database_url):
    out = pgbell(database_url, "rules")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:5] == ["NAME", "TABLE", "EVENT", "FUNCTION", "ENABLED"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {
        "_102_deal_created_v3",
        "_111_payment_received_v2",
        "_903_wake_servers_v4",
        "_911_state_changes_v2",
        "_921_tokens_revoked_v2",
    }
    assert (
        "deals" in rows["_102_deal_created_v3"] and "AFTER INSERT" in rows["_102_deal_created_v3"]
    )
    assert "pgbell.deal_created_v3()" in rows["_102_deal_created_v3"]
    assert "owner and every manager" in rows["_102_deal_created_v3"]


def test_disable_stops_a_trigger_and_enable_restores_it(database_url):
    owner = add_user(database_url, "ann")
    out = pgbell(database_url, "rules", "disable", "_102_deal_created_v3")
    assert out.returncode == 0, out.stderr
    assert "disabled" in out.stdout
    [listed] = [
        ln for ln in pgbell(database_url, "rules").stdout.splitlines() if ln.startswith("_102")
    ]
    assert " NO " in listed, listed
    _deal(database_url, owner)
    assert _notifications(database_url) == 0

    out = pgbell(database_url, "rules", "enable", "_102_deal_created_v3")
    assert out.returncode == 0, out.stderr
    _deal(database_url, owner)
    assert _notifications(database_url) == 1


def test_unknown_rule_is_a_clear_error(database_url):
    out = pgbell(database_url, "rules", "disable", "no_such_trigger")
    assert out.returncode != 0
    assert "no notification trigger named 'no_such_trigger'" in out.stderr


def _enabled(url: str) -> dict[str, bool]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tgrelid::regclass::text, tgenabled <> 'D' FROM pg_trigger"
            " WHERE tgname = '_102_deal_created_v3'"
        ).fetchall()
    return dict(rows)


def test_a_name_on_two_tables_needs_table_and_foreign_triggers_are_left_alone(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE public.leads (LIKE public.deals);"
            "CREATE TRIGGER _102_deal_created_v3 AFTER INSERT ON public.leads"
            " REFERENCING NEW TABLE AS new_deals"
            " FOR EACH STATEMENT EXECUTE FUNCTION pgbell.deal_created_v3();"
            # an application's own trigger of the same name, on its own function
            "CREATE FUNCTION public.audit() RETURNS trigger LANGUAGE plpgsql"
            " AS $$ BEGIN RETURN NULL; END $$;"
            "CREATE TABLE public.audits (id int);"
            "CREATE TRIGGER _102_deal_created_v3 AFTER INSERT ON public.audits"
            " FOR EACH STATEMENT EXECUTE FUNCTION public.audit();"
        )
    out = pgbell(database_url, "rules", "disable", "_102_deal_created_v3")
    assert out.returncode != 0
    assert "is on deals, leads: say which with --table" in out.stderr, out.stderr
    assert all(_enabled(database_url).values()), "an ambiguous name changed a table"

    out = pgbell(database_url, "rules", "disable", "_102_deal_created_v3", "--table", "leads")
    assert out.returncode == 0, out.stderr
    assert _enabled(database_url) == {"deals": True, "leads": False, "audits": True}
    out = pgbell(database_url, "rules", "enable", "_102_deal_created_v3", "--table", "audits")
    assert out.returncode != 0 and "no notification trigger named" in out.stderr
