"""docs/sql-api.md: every ```sql example runs as written, in order."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import psycopg

from pgbell.ops import embedded

DOC = Path(__file__).resolve().parent.parent / "docs" / "sql-api.md"


def test_sql_api_examples_run_as_written(database_url):
    blocks = re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 8, "docs/sql-api.md lost its examples"
    script = "\n".join(blocks)
    out = subprocess.run(
        [str(embedded.bin_dir() / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-d", database_url],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, f"psql failed:\n{out.stderr}"
    # what the prose promises, checked against the database the examples left
    assert "no data for due" in out.stderr
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT user_id, kind, title, priority::text FROM pgbell.notifications ORDER BY id"
        ).fetchall()
    assert rows[:2] == [
        ("101", "deal_created", "New deal: Acme", "normal"),
        ("102", "deal_created", "New deal: Acme", "normal"),
    ]
    assert ("103", "audit_due", "Audit due: ACME-7", "high") in rows
    assert ("103", "audit_due", "Audit ACME-8 by {due}", "high") in rows
    titles_for_ada = [t for u, _, t, _ in rows if u == "101"]
    assert "New deal: Muted" not in titles_for_ada and "New deal: Fire" in titles_for_ada
    assert ("102", "ticket_assigned", "Ticket: Printer on fire", "normal") in rows
