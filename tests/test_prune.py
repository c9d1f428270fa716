"""`pgbell prune`: retention deletes old read or archived notifications in
batches, keeps unread ones unless told, and never touches recent ones."""

from __future__ import annotations

import psycopg
import pytest

from pgbell.ops.cli import main
from tests.support import add_user, insert_deal


def _ages(db_url: str, owner: int) -> dict[str, tuple[bool, bool]]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT title, read_at IS NOT NULL, archived_at IS NOT NULL"
            " FROM pgbell.notifications WHERE user_id = %s",
            (str(owner),),
        ).fetchall()
    return {title: (read, archived) for title, read, archived in rows}


def test_prune_deletes_old_read_and_archived_only(database_url, monkeypatch, capsys):
    owner = add_user(database_url, "keeper")
    for title in ("old read", "old archived", "old unread", "new read"):
        insert_deal(database_url, title, owner)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE pgbell.notifications SET created_at = now() - interval '40 days'"
            " WHERE title LIKE 'New deal: old%'"
        )
        conn.execute(
            "UPDATE pgbell.notifications SET read_at = now()"
            " WHERE title IN ('New deal: old read', 'New deal: new read')"
        )
        conn.execute(
            "UPDATE pgbell.notifications SET archived_at = now()"
            " WHERE title = 'New deal: old archived'"
        )
    monkeypatch.setenv("DATABASE_URL", database_url)

    # batch 1: three transactions' worth, proving the loop goes on past one batch
    assert main(["prune", "--older-than", "30", "--batch", "1"]) == 0
    assert "deleted 2 read or archived notifications" in capsys.readouterr().out
    assert set(_ages(database_url, owner)) == {"New deal: old unread", "New deal: new read"}

    assert main(["prune", "--older-than", "30", "--include-unread"]) == 0
    assert "deleted 1 notifications" in capsys.readouterr().out
    assert set(_ages(database_url, owner)) == {"New deal: new read"}


@pytest.mark.parametrize("bad", [["--older-than", "0"], ["--older-than", "5", "--batch", "0"]])
def test_prune_refuses_nonsense(bad, database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    with pytest.raises(SystemExit, match="pgbell: --"):
        main(["prune", *bad])
