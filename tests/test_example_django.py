"""examples/django end to end: a real Django (`manage.py runserver`) beside a
real `pgbell serve`, on one fresh database. Django logs its users in and
issues their pgbell tokens; an ORM write notifies through the example's
trigger; aiohttp plays the browser. No mocks: every piece is the process an
operator would run, started the way its README says."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import jwt
import psycopg
import pytest

from tests.support import (
    DEFAULT_WAIT,
    JWT_SECRET,
    assert_no_frame_before_pong,
    free_port,
    next_frame,
    server_env,
    wait_until,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "django"
PGBELL = Path(sys.executable).with_name("pgbell")
AUDIENCE = "pgbell-django-example"
ISSUER = "https://django.example.test"
START_WAIT = 30.0  # a server process answering
COMMAND_WAIT = 60.0  # one manage.py or pgbell command
LOG_TAIL = 4000

USERS = """
from django.contrib.auth.models import Group, User

User.objects.create_user("alice", password="alice-pw")
User.objects.create_user("bob", password="bob-pw", is_staff=True)
mallory = User.objects.create_user("mallory", password="mallory-pw")
# an inactive staff user: never a recipient (no password: hashing is slow)
User.objects.create(username="carol", is_staff=True, is_active=False)
mallory.groups.add(Group.objects.create(name="reviewers"))
"""

# A write that the trigger notifies inside its transaction, then rolls back;
# then a committed one. Printing the rows the trigger wrote before the
# rollback proves the trigger ran, so "nobody was told" means the rollback.
ROLLBACK_THEN_COMMIT = """
from django.contrib.auth.models import User
from django.db import connection, transaction
from tasks.models import Task

alice = User.objects.get(username="alice")


class RollBack(Exception):
    pass


try:
    with transaction.atomic():
        Task.objects.create(title="Rolled back", assignee=alice)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pgbell.notifications WHERE title = 'New task: Rolled back'"
            )
            print("rows before the rollback:", cursor.fetchone()[0])
        raise RollBack
except RollBack:
    pass
with transaction.atomic():
    Task.objects.create(title="Committed", assignee=alice)
"""

ISSUE_TOKEN = """
from django.contrib.auth.models import User
from tasks import tokens

print("token:", tokens.issue(User.objects.get(username="alice"))["token"])
"""


@dataclass
class Stack:
    database_url: str
    env: dict[str, str]  # Django's environment
    django: str  # http://127.0.0.1:port of runserver
    pgbell: str  # http://127.0.0.1:port of pgbell serve
    logs: dict[str, Path] = field(default_factory=dict)

    @property
    def ws(self) -> str:
        return "ws" + self.pgbell[len("http") :] + "/ws"


async def run(argv: list[str], env: dict[str, str], cwd: Path = EXAMPLE) -> tuple[int, str, str]:
    """One command to completion, bounded: (exit status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), COMMAND_WAIT)
    except TimeoutError:
        raise AssertionError(
            f"{' '.join(argv[1:3])} did not finish within {COMMAND_WAIT} s"
        ) from None
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode, out.decode(), err.decode()


async def manage(env: dict[str, str], *args: str) -> str:
    """`manage.py ARGS` of the example; fails with its stderr unless it exits 0."""
    code, out, err = await run([sys.executable, "manage.py", *args], env)
    assert code == 0, f"manage.py {args[0]} exited {code}:\n{err[-LOG_TAIL:]}"
    return out


def django_env(database_url: str, pgbell_url: str, **extra: str) -> dict[str, str]:
    """Django's environment, as README.md sets it."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bellsite.settings",
        "DATABASE_URL": database_url,
        "PGBELL_URL": pgbell_url,
        "PGBELL_JWT_SECRET": JWT_SECRET,
        "PGBELL_JWT_AUDIENCE": AUDIENCE,
        "PGBELL_JWT_ISSUER": ISSUER,
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-LOG_TAIL:]


async def answering(proc: asyncio.subprocess.Process, url: str, what: str, log: Path) -> None:
    """Waits, bounded, until `url` answers 200; fails at once if `proc` exits."""
    async with aiohttp.ClientSession() as http:

        async def up() -> bool:
            assert proc.returncode is None, f"{what} exited {proc.returncode}:\n{_tail(log)}"
            try:
                async with http.get(url) as r:
                    return r.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await wait_until(up, f"{what} answering {url} with 200", timeout=START_WAIT, interval=0.1)


@asynccontextmanager
async def running(empty_database: str, tmp_path: Path) -> AsyncIterator[Stack]:
    """pgbell's schema and the example's migrations on `empty_database`, its
    users, and both servers answering. Every process is killed afterwards,
    and their logs are printed (pytest shows them when the test failed)."""
    django_port, pgbell_port = free_port(), free_port()
    django = f"http://127.0.0.1:{django_port}"
    pgbell = f"http://127.0.0.1:{pgbell_port}"
    s = Stack(empty_database, django_env(empty_database, pgbell), django, pgbell)
    procs: list[asyncio.subprocess.Process] = []
    try:
        code, _, err = await run(
            [str(PGBELL), "migrate"], {**os.environ, "DATABASE_URL": empty_database}
        )
        assert code == 0, f"pgbell migrate exited {code}:\n{err}"
        await manage(s.env, "migrate", "--no-input")
        await manage(s.env, "shell", "-c", USERS)

        pgbell_env = {
            **os.environ,
            **server_env(
                empty_database,
                PGBELL_JWT_AUDIENCE=AUDIENCE,
                PGBELL_JWT_ISSUER=ISSUER,
                # the Django page's origin: its REST fallback and module import need CORS
                PGBELL_CORS_ORIGINS=django,
            ),
        }
        commands = {
            "django": (
                [sys.executable, "manage.py", "runserver", f"127.0.0.1:{django_port}"]
                + ["--noreload"],
                s.env,
                f"{django}/accounts/login/",
            ),
            "pgbell": (
                [
                    str(PGBELL),
                    "serve",
                    "--workers",
                    "1",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(pgbell_port),
                ],
                pgbell_env,
                f"{pgbell}/healthz",
            ),
        }
        # both start at once; each is then awaited in turn (a failed wait leaves no task behind)
        waits = []
        for name, (argv, env, ready) in commands.items():
            log = s.logs[name] = tmp_path / f"{name}.log"
            with log.open("wb") as out:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    env=env,
                    cwd=EXAMPLE,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            procs.append(proc)
            waits.append((proc, ready, name, log))
        for proc, ready, name, log in waits:
            await answering(proc, ready, name, log)
        yield s
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        for name, log in s.logs.items():
            print(f"----- {name} log (tail) -----\n{_tail(log)}")


@pytest.fixture
async def stack(empty_database: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with running(empty_database, tmp_path) as s:
        yield s


def _csrf(html: str, where: str) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert found, f"no CSRF token in the form of {where}"
    return found.group(1)


async def django_login(s: Stack, username: str) -> aiohttp.ClientSession:
    """A browser's cookie jar, logged in through Django's own login form."""
    # unsafe: aiohttp keeps no cookies of a bare IP address otherwise
    browser = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        async with browser.get(f"{s.django}/accounts/login/") as r:
            assert r.status == 200, f"GET /accounts/login/: {r.status}"
            csrf = _csrf(await r.text(), "the login page")
        form = {"username": username, "password": f"{username}-pw", "csrfmiddlewaretoken": csrf}
        async with browser.post(
            f"{s.django}/accounts/login/", data=form, allow_redirects=False
        ) as r:
            assert (r.status, r.headers.get("Location")) == (302, "/"), (
                f"log in {username}: {r.status} {r.headers.get('Location')}"
            )
    except BaseException:
        await browser.close()
        raise
    return browser


async def pgbell_token(s: Stack, browser: aiohttp.ClientSession, username: str) -> dict:
    async with browser.get(f"{s.django}/pgbell/token") as r:
        assert r.status == 200, f"GET /pgbell/token as {username}: {r.status}"
        assert "no-store" in r.headers.get("Cache-Control", ""), r.headers
        body = await r.json()
    assert body["user"]["username"] == username, body
    claims = jwt.decode(
        body["token"], JWT_SECRET, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER
    )
    assert claims["sub"] == body["user"]["id"], claims
    assert 0 < body["expires_in"] and "exp" in claims, (body, claims)
    return body


async def create_task(s: Stack, browser: aiohttp.ClientSession, title: str, assignee: str):
    """POST /tasks/ as the page's form does (CSRF token included)."""
    async with browser.get(f"{s.django}/") as r:
        assert r.status == 200, f"GET /: {r.status}"
        csrf = _csrf(await r.text(), "the task page")
    form = {"title": title, "assignee": assignee, "csrfmiddlewaretoken": csrf}
    async with browser.post(f"{s.django}/tasks/", data=form, allow_redirects=False) as r:
        assert (r.status, r.headers.get("Location")) == (302, "/"), (
            f"POST /tasks/: {r.status} {(await r.text())[:500]}"
        )


async def closed_with(ws: aiohttp.ClientWebSocketResponse, where: str) -> tuple[int, str]:
    """The server's close frame, which must come first."""
    msg = await asyncio.wait_for(ws.receive(), DEFAULT_WAIT)
    assert msg.type == aiohttp.WSMsgType.CLOSE, f"{where}: got {msg.type} {msg.data!r}"
    return msg.data, msg.extra


def _notifications(database_url: str, title: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT count(*) FROM pgbell.notifications WHERE title = %s", (title,)
        ).fetchone()[0]


def _role_members(database_url: str, role: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT m FROM pgbell.role_members(%s) AS m", (role,)).fetchall()
    return {r[0] for r in rows}


async def test_the_django_migration_needs_pgbells_schema_first(empty_database, tmp_path):
    env = django_env(empty_database, "http://127.0.0.1:9")
    code, out, err = await run([sys.executable, "manage.py", "migrate", "--no-input"], env)
    assert code != 0, f"manage.py migrate went through without pgbell's schema:\n{out}"
    assert "pgbell.notify() does not exist" in err and "pgbell migrate" in err, err
    assert "Traceback" not in err, f"a traceback instead of a message:\n{err}"


async def test_django_logs_in_issues_tokens_and_its_orm_writes_notify(stack: Stack, http):
    s = stack
    async with AsyncExitStack() as cleanup:
        alice, bob, mallory = [
            await cleanup.enter_async_context(await django_login(s, name))
            for name in ("alice", "bob", "mallory")
        ]
        async with aiohttp.ClientSession() as anonymous:
            async with anonymous.get(f"{s.django}/pgbell/token") as r:
                assert r.status == 401, f"a token for nobody: {r.status}"

        # The tokens Django issues open pgbell's socket, from the Django page's origin.
        sockets = {}
        for name, browser in (("alice", alice), ("bob", bob), ("mallory", mallory)):
            token = (await pgbell_token(s, browser, name))["token"]
            ws = await http.ws_connect(f"{s.ws}?token={token}", origin=s.django)
            first = await next_frame(ws, "snapshot", where=f"for {name}")
            assert first["unread_count"] == 0, first
            sockets[name] = ws

        # role_members reads Django: staff and groups, active users only.
        with psycopg.connect(s.database_url) as conn:
            ids = dict(conn.execute("SELECT username, id::text FROM auth_user").fetchall())
        assert _role_members(s.database_url, "staff") == {ids["bob"]}
        assert _role_members(s.database_url, "reviewers") == {ids["mallory"]}
        assert _role_members(s.database_url, "nobody") == set()

        # A form post without its CSRF token is refused (and creates nothing:
        # alice's next frame below is the task created after it).
        async with mallory.post(
            f"{s.django}/tasks/", data={"title": "Forged", "assignee": "alice"}
        ) as r:
            assert r.status == 403, f"POST /tasks/ without CSRF: {r.status}"

        # A task created through the view: the assignee and staff are told.
        await create_task(s, mallory, "Water the plants", "alice")
        for name in ("alice", "bob"):
            frame = await next_frame(sockets[name], "notification", where=f"for {name}")
            n = frame["notification"]
            assert (n["kind"], n["title"], n["body"], frame["unread_count"]) == (
                "task_assigned",
                "New task: Water the plants",
                "Assigned to alice",
                1,
            ), frame
            assert n["data"]["created_by"] == "mallory", n
            assert n["action_url"] == f"/tasks/{n['data']['task_id']}/", n
        await assert_no_frame_before_pong(sockets["mallory"], "mallory (creator, not staff)")
        # the action_url is a page of the Django site
        async with alice.get(f"{s.django}{n['action_url']}") as r:
            assert r.status == 200 and "Water the plants" in await r.text(), r.status

        # A rolled-back ORM write notifies nobody; the committed one after it
        # is alice's very next frame (frames come in commit order).
        out = await manage(s.env, "shell", "-c", ROLLBACK_THEN_COMMIT)
        assert "rows before the rollback: 2" in out, out
        for name in ("alice", "bob"):
            frame = await next_frame(sockets[name], "notification", where=f"for {name}")
            assert frame["notification"]["title"] == "New task: Committed", frame
            assert frame["unread_count"] == 2, frame
        await assert_no_frame_before_pong(sockets["alice"], "alice, after the committed task")
        await assert_no_frame_before_pong(sockets["mallory"], "mallory, after both writes")
        assert _notifications(s.database_url, "New task: Rolled back") == 0

        # Tokens from a Django that disagrees with pgbell are refused: 4401.
        other_secret = "another-secret-" + "y" * 32
        misconfigured = {
            "another secret": ({"PGBELL_JWT_SECRET": other_secret}, other_secret, AUDIENCE),
            "another audience": (
                {"PGBELL_JWT_AUDIENCE": "someone-else"},
                JWT_SECRET,
                "someone-else",
            ),
        }
        for what, (env, secret, audience) in misconfigured.items():
            out = await manage({**s.env, **env}, "shell", "-c", ISSUE_TOKEN)
            found = re.search(r"^token: (\S+)$", out, re.MULTILINE)
            assert found, f"no token printed by Django with {what}: {out!r}"
            token = found.group(1)
            # a well-formed token for alice, wrong only in what was misconfigured
            claims = jwt.decode(
                token, secret, algorithms=["HS256"], audience=audience, issuer=ISSUER
            )
            assert claims["sub"] == ids["alice"], claims
            ws = await http.ws_connect(f"{s.ws}?token={token}", origin=s.django)
            assert await closed_with(ws, f"a token signed by Django with {what}") == (
                4401,
                "unauthorized",
            ), what


async def test_pgbell_serves_the_django_page_its_client_and_api(stack: Stack, http):
    """What the Django page loads cross-origin needs CORS, which
    PGBELL_CORS_ORIGINS grants: the client module and the REST fallback."""
    s = stack
    browser = await django_login(s, "alice")
    try:
        async with browser.get(f"{s.django}/") as r:
            page = await r.text()
        assert f'"url": "{s.pgbell}"' in page, "the page is not told where pgbell is"
        token = (await pgbell_token(s, browser, "alice"))["token"]
    finally:
        await browser.close()
    origin = {"Origin": s.django}
    async with http.get(f"{s.pgbell}/static/pgbell-client.js", headers=origin) as r:
        assert r.status == 200 and "useToken(token" in await r.text(), r.status
        assert r.headers.get("Access-Control-Allow-Origin") == s.django, r.headers
    headers = {**origin, "Authorization": f"Bearer {token}"}
    async with http.get(f"{s.pgbell}/notifications?limit=50", headers=headers) as r:
        assert r.status == 200, await r.text()
        assert r.headers.get("Access-Control-Allow-Origin") == s.django, r.headers
        assert (await r.json())["unread_count"] == 0
