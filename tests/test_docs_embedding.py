"""docs/embedding.md: every ```sql block runs as written, in order, with psql
on a freshly migrated database, then the SQLAlchemy example; what the prose
promises is checked against the rows they leave. The Django snippets must
stand as they are in examples/django/, which tests/test_example_django.py
runs end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pgbell.ops import embedded, migrate

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "embedding.md"
ROLES = ("shop_backend", "shop_bell")  # the logins the page creates
ADA, GRACE, LINUS = (f"7d1f3c2e-0000-4000-8000-00000000000{c}" for c in "abc")


def _section(title: str) -> str:
    """The text of the `## N. <title>` section."""
    text = DOC.read_text()
    match = re.search(rf"^## \d+\. {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"docs/embedding.md lost its section {title!r}"
    return match.group(1)


def _blocks(lang: str, text: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.M | re.S)


def _drop_roles(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        for role in ROLES:
            if conn.execute("SELECT to_regrole(%s)", (role,)).fetchone()[0] is None:
                continue
            ident = sql.Identifier(role)
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            )
            conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
            conn.execute(sql.SQL("DROP ROLE {}").format(ident))


@pytest.fixture
def shop_database(empty_database: str) -> Iterator[str]:
    """A database with pgbell migrated; the cluster-wide logins the page
    creates are dropped before and after."""
    _drop_roles(empty_database)
    migrate.upgrade(empty_database)
    yield empty_database
    _drop_roles(empty_database)


def _notifications(db_url: str) -> list[tuple[str, str]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT user_id, title FROM pgbell.notifications ORDER BY id"
        ).fetchall()


def test_sql_and_sqlalchemy_examples_run_as_written(shop_database, tmp_path):
    script = "\n".join(_blocks("sql", DOC.read_text()))
    out = subprocess.run(
        [str(embedded.bin_dir() / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-d", shop_database],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, f"psql failed:\n{out.stderr}"
    # the buyer and the staff hear of the order the application wrote; Linus does not
    teapot = [(ADA, "Order placed: Teapot"), (GRACE, "Order placed: Teapot")]
    assert _notifications(shop_database) == teapot

    [program] = _blocks("python", _section("From SQLAlchemy"))
    (tmp_path / "shop.py").write_text(program)
    out = subprocess.run(
        [sys.executable, "shop.py"],
        cwd=tmp_path,
        env={**os.environ, "DATABASE_URL": shop_database},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, f"the SQLAlchemy example failed:\n{out.stderr}"
    after = _notifications(shop_database)[len(teapot) :]
    assert sorted(after) == sorted(
        [(LINUS, "Order placed: Kettle"), (GRACE, "Order placed: Kettle"), (ADA, "Shipped: Teapot")]
    ), "the rolled-back order must notify nobody"


def test_the_application_login_can_notify_but_not_read_pgbell(shop_database):
    script = "\n".join(_blocks("sql", DOC.read_text()))
    subprocess.run(
        [str(embedded.bin_dir() / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-d", shop_database],
        input=script,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    with psycopg.connect(shop_database, autocommit=True) as conn:
        conn.execute("SET ROLE shop_backend")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM pgbell.notifications")
        conn.execute("RESET ROLE")
        conn.execute("SET ROLE shop_bell")
        assert conn.execute("SELECT count(*) FROM pgbell.notifications").fetchone()[0] == 2


def test_the_django_snippets_are_the_example_projects_own_code():
    section = _section("From Django")
    snippets = _blocks("python", section) + _blocks("js", section)
    assert len(snippets) >= 5, "docs/embedding.md lost its Django snippets"
    for snippet in snippets:
        first, _, body = snippet.partition("\n")
        # each snippet names its file on its first line, as a comment
        path = first.removeprefix("# ").removeprefix("// ")
        assert path.startswith("examples/django/"), f"no file named: {first}"
        source = (ROOT / path).read_text()
        assert body.strip() in source, f"{path} no longer has:\n{body}"
