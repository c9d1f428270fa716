"""docs/sql-api.md: every ```sql example runs as written, in order, on a
database migrated with the demo; the results it shows are what psql prints;
and what its prose promises holds in the database the examples leave."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import psycopg

from pgbell.ops import embedded, migrate

DOC = Path(__file__).resolve().parent.parent / "docs" / "sql-api.md"
BLOCKS = re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
UUID_A = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
UUID_B = "16fd2706-8baf-433b-82eb-8c7fada847da"


def _shown_results() -> list[str]:
    """The result tables the examples show as comments: `-- ` plus a line of
    psql's aligned output (a header, its rule, or a row)."""
    lines = []
    for block in BLOCKS:
        for line in block.splitlines():
            if line.startswith("-- ") and ("|" in line or "-+-" in line):
                lines.append(line[3:].rstrip())
    return lines


def _shown_warnings() -> list[str]:
    return [
        line[3:].strip()
        for block in BLOCKS
        for line in block.splitlines()
        if line.startswith("-- WARNING:")
    ]


def _run_examples(database_url: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [str(embedded.bin_dir() / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-d", database_url],
        input="\n".join(BLOCKS),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, f"psql failed:\n{out.stderr}"
    return out


def test_sql_api_examples_run_as_written(database_url):
    assert len(BLOCKS) >= 12, "docs/sql-api.md lost its examples"
    out = _run_examples(database_url)

    # the results and warnings the page shows are what psql printed
    printed = {line.rstrip() for line in out.stdout.splitlines()}
    shown = _shown_results()
    assert len(shown) >= 9, "docs/sql-api.md lost its result tables"
    assert [line for line in shown if line not in printed] == [], out.stdout
    warned = {" ".join(line.split()) for line in out.stderr.splitlines()}
    for warning in _shown_warnings():
        assert " ".join(warning.split()) in warned, f"not warned: {warning}\n{out.stderr}"

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT user_id, kind, title, priority::text, action_url"
            " FROM pgbell.notifications ORDER BY id"
        ).fetchall()
    notes = [r[:4] for r in rows]

    # sending: user ids and role members, one row each, recipients as text
    assert notes[:2] == [
        ("101", "deal_created", "New deal: Acme", "normal"),
        ("102", "deal_created", "New deal: Acme", "normal"),
    ]
    # a NULL recipient is skipped
    assert [r[0] for r in notes if r[2] == "New deal: Globex"] == [UUID_A]

    # templates: edits apply to the next notification; missing data stays visible
    assert ("103", "audit_due", "Audit due: ACME-7", "high") in notes
    assert ("103", "audit_due", "Audit ACME-8 by {due}", "high") in notes

    # action URLs: an http(s) URL is kept, javascript: is stored as NULL
    urls = {title: url for _, kind, title, _, url in rows if kind == "report_ready"}
    assert urls == {
        "Report ready: Q4": "https://reports.example.com/q4",
        "Report ready: Q3": None,
    }

    # the replaced role_members expanded a role for a writer that may not read its table
    support = sorted(r[0] for r in notes if r[2] == "Audit ACME-9 by 2027-01-31")
    assert support == sorted([UUID_A, UUID_B])

    # preferences: a muted kind is dropped, urgent gets through
    titles_for_ada = [t for u, _, t, _ in notes if u == "101"]
    assert "New deal: Muted" not in titles_for_ada and "New deal: Fire" in titles_for_ada

    # the demo's trigger: the owner and the managers pgbell's own users still give
    initech = sorted(r[0] for r in notes if r[2] == "New deal: Initech")
    assert initech == ["102", "103"]

    # the application's trigger: one row for the assignee, none for the NULL one
    tickets = [r for r in notes if r[1] == "ticket_assigned"]
    assert tickets == [("102", "ticket_assigned", "Ticket: Printer on fire", "normal")]


def test_what_the_page_says_of_role_members_and_the_roles(database_url):
    _run_examples(database_url)
    writer_reads_team = (
        "SELECT has_table_privilege('pgbell_writer', 'public.team_members', 'SELECT')"
    )
    replaced = """
        SELECT p.prosrc, p.proowner::regrole::text, p.prosecdef,
               array_to_string(p.proconfig, ','),
               EXISTS (SELECT FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                        WHERE a.grantee = 0),
               obj_description(p.oid, 'pg_proc')
          FROM pg_proc p WHERE p.oid = 'pgbell.role_members(text)'::regprocedure
    """
    owner = "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'pgbell'"
    with psycopg.connect(database_url) as conn:
        # role_members read the team as pgbell's owner: the writer itself may not
        assert conn.execute(writer_reads_team).fetchone()[0] is False
        src, fn_owner, definer, config, by_public, comment = conn.execute(replaced).fetchone()
        schema_owner = conn.execute(owner).fetchone()[0]
    # CREATE OR REPLACE kept its owner, its privileges and its comment
    assert "public.team_members" in src
    assert fn_owner == schema_owner and definer is False
    assert config is None  # no SET clause: inlined into pgbell.notify's statement
    assert by_public is False
    assert comment and "replaceable" in comment

    # a later `pgbell migrate` leaves the replaced one alone
    migrate.upgrade(database_url)
    with psycopg.connect(database_url) as conn:
        assert "public.team_members" in conn.execute(replaced).fetchone()[0]

    # the roles may what the table says, and no more
    checks = {
        "writer executes notify": (
            "has_function_privilege('pgbell_writer',"
            " 'pgbell.notify(text, text[], text[], jsonb, pgbell.priority)', 'EXECUTE')",
            True,
        ),
        "writer executes role_members": (
            "has_function_privilege('pgbell_writer', 'pgbell.role_members(text)', 'EXECUTE')",
            False,
        ),
        "writer reads users": (
            "has_table_privilege('pgbell_writer', 'pgbell.users', 'SELECT')",
            False,
        ),
        "writer inserts templates": (
            "has_table_privilege('pgbell_writer', 'pgbell.templates', 'INSERT')",
            False,
        ),
        "server marks read": (
            "has_column_privilege('pgbell_server', 'pgbell.notifications', 'read_at', 'UPDATE')",
            True,
        ),
        "server marks archived": (
            "has_column_privilege('pgbell_server', 'pgbell.notifications', 'archived_at',"
            " 'UPDATE')",
            True,
        ),
        "server inserts notifications": (
            "has_table_privilege('pgbell_server', 'pgbell.notifications', 'INSERT')",
            False,
        ),
        "server keeps preferences": (
            " AND ".join(
                f"has_table_privilege('pgbell_server', 'pgbell.{table}', '{privilege}')"
                for table in ("preferences", "global_preferences")
                for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE")
            ),
            True,
        ),
        "server prunes state_changes": (
            "has_table_privilege('pgbell_server', 'pgbell.state_changes', 'DELETE')",
            True,
        ),
        "server reads the version": (
            "has_table_privilege('pgbell_server', 'pgbell.alembic_version', 'SELECT')",
            True,
        ),
        "server writes the demo": (
            "has_table_privilege('pgbell_server', 'public.deals', 'INSERT')"
            " AND has_table_privilege('pgbell_server', 'public.payments', 'INSERT')",
            True,
        ),
        "server writes templates": (
            "has_table_privilege('pgbell_server', 'pgbell.templates', 'UPDATE')",
            False,
        ),
    }
    with psycopg.connect(database_url) as conn:
        got = {
            name: conn.execute(f"SELECT {expr}").fetchone()[0] for name, (expr, _) in checks.items()
        }
    assert got == {name: want for name, (_, want) in checks.items()}
