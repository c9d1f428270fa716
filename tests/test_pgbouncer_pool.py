"""pgbell's pool through a real PgBouncer in transaction mode
(deploy/pgbouncer/pgbouncer.ini), its LISTEN connection direct: what
transaction pooling does to prepared statements, and what pgbell and the
PgBouncer configuration do about it."""

from __future__ import annotations

import shutil

import psycopg

from tests.contract_client import frame, open_socket, snapshot
from tests.deploy_support import Pgbell, PgBouncer, deploy_env, scratch_dir
from tests.support import add_user, insert_deal, login


async def test_a_pool_through_transaction_pgbouncer_serves_with_the_statement_cache_off(
    database_url, start_server, http
):
    """Behind transaction pooling one client's statements run on whichever
    backend is free. A holder takes the backend the pool just used, so the
    next request runs on another one, where a statement prepared before is
    unknown: with asyncpg's statement cache on, that request failed."""
    directory = scratch_dir()
    bouncer = PgBouncer(directory, database_url)
    try:
        await bouncer.start()
        server = await start_server(
            DATABASE_URL=bouncer.url(),
            PGBELL_LISTEN_DATABASE_URL=database_url,
            PGBELL_DB_POOL_MODE="transaction",
        )
        add_user(database_url, "ann")
        token = await login(http, server.base, "ann")
        auth = {"Authorization": f"Bearer {token}"}
        for round_ in range(5):
            async with http.get(f"{server.base}/notifications", headers=auth) as r:
                assert r.status == 200, await r.text()
            async with await psycopg.AsyncConnection.connect(
                bouncer.url(), prepare_threshold=None
            ) as holder:
                await holder.execute("SELECT pg_backend_pid()")  # holds it: a transaction
                async with http.get(f"{server.base}/notifications", headers=auth) as r:
                    assert r.status == 200, f"round {round_}: {r.status} {await r.text()}"
                await holder.rollback()
    finally:
        await bouncer.kill()
        shutil.rmtree(directory, ignore_errors=True)


async def test_a_restarted_process_resumes_through_transaction_pgbouncer(database_url, http):
    """A resume reads `missed` through a cursor, which asyncpg prepares as a
    named statement even with its cache off, and behind transaction pooling
    that statement outlives the transaction on its backend. A restarted
    process numbers its statements from the start again: on a backend that
    the previous one used, its resume collided with a name left there and
    the socket died after its handshake. One server connection in the pool
    makes every transaction share a backend."""
    directory = scratch_dir()
    bouncer = PgBouncer(directory, database_url, pool_size=1)
    server = Pgbell(directory, deploy_env(bouncer.url(), database_url))
    owner = add_user(database_url, "ann")
    insert_deal(database_url, "Missed", owner)
    try:
        await bouncer.start()
        for start in ("first", "second"):
            await server.start(http)
            token = await login(http, server.base, "ann")
            ws = await open_socket(f"ws://127.0.0.1:{server.port}", token, since=0)
            frame = await snapshot(ws, f"resuming after the {start} start")
            assert [n["title"] for n in frame["missed"]] == ["New deal: Missed"], frame
            await ws.close()
            assert await server.stop() == 0, server.process.tail()
    finally:
        await server.kill()
        await bouncer.kill()
        shutil.rmtree(directory, ignore_errors=True)


async def test_a_listener_through_session_pgbouncer_delivers(database_url, start_server, http):
    """The LISTEN connection may go through a session-mode pool. PgBouncer
    refuses startup parameters it does not know, so the listener sets its
    session with SET after connecting."""
    directory = scratch_dir()
    bouncer = PgBouncer(directory, database_url, pool_mode="session")
    try:
        await bouncer.start()
        server = await start_server(PGBELL_LISTEN_DATABASE_URL=bouncer.url())
        uid = add_user(database_url, "ann")
        ws = await open_socket(server.ws_base, await login(http, server.base, "ann"))
        await snapshot(ws, "through session pooling")
        insert_deal(database_url, "Pooled", uid)
        got = await frame(ws, "notification", "after an insert, the listener behind PgBouncer")
        assert got["notification"]["title"] == "New deal: Pooled"
        await ws.close()
    finally:
        await bouncer.kill()
        shutil.rmtree(directory, ignore_errors=True)
