"""The REST API, fuzzed from its own /openapi.json against a real server.

schemathesis (its `run` command, every phase: examples, coverage, fuzzing,
stateful; valid and invalid data) calls every documented operation, once
with a token of pgbell's own login and once without one, and checks each
answer: never a 5xx, a documented status, the documented content type, a
body that matches the documented schema. hypothesis then sends hostile JSON
bodies (deep nesting, huge numbers, NaN, NUL, lone surrogates, bytes that
are not UTF-8, sizes around PGBELL_MAX_BODY_BYTES) to every operation that
takes a body, checked the same way. Meanwhile the server must log no
unhandled error.

Bounded and repeatable: a fixed number of examples per operation and a
fixed seed, so a failure found once is found on every run.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jsonschema
import pytest
from aiohttp.http_exceptions import HttpProcessingError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pgbell.config import Settings
from pgbell.http import logs
from pgbell.http.app import create_app
from tests.support import add_user, login, server_env

SEED = 20261125
MAX_EXAMPLES = 20  # per operation and schemathesis phase
BODY_EXAMPLES = 60  # hostile bodies per operation that takes one
RUN_TIMEOUT = 300.0  # one schemathesis run; it takes well under a minute
REQUEST_TIMEOUT = 10.0
MAX_BODY = 65536  # the default
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
# The fuzzers fail logins and create deals by the hundred: budgets this high
# keep 429 (documented on both) from standing in for the answers under test.
FUZZ_ENV = {
    "PGBELL_LOGIN_MAX_FAILURES": "1000000",
    "PGBELL_LOGIN_MAX_FAILURES_PER_ADDRESS": "1000000",
    "PGBELL_LOGIN_MAX_PENDING": "10000",
    "PGBELL_DEALS_PER_MINUTE": "1000000",
    "PGBELL_MAX_BODY_BYTES": str(MAX_BODY),
}


@pytest.fixture
async def fuzz_server(database_url, aiohttp_server):
    """A real server on a real port, configured as `pgbell serve` runs it
    (its access logger included: it sees every malformed request too)."""
    app = create_app(Settings.from_env(server_env(database_url, **FUZZ_ENV)))
    srv = await aiohttp_server(app, access_log_class=logs.AccessLogger)
    srv.base = str(srv.make_url("")).rstrip("/")
    return srv


def _aiohttp_refused_request(record: logging.LogRecord) -> bool:
    """aiohttp's own ERROR line for bytes that are not an HTTP request: it
    answers 400 itself, before pgbell sees anything, and logs the parse error."""
    exc = record.exc_info[1] if record.exc_info else None
    return record.name == "aiohttp.server" and isinstance(exc, HttpProcessingError)


def crashes(records: list[logging.LogRecord]) -> list[str]:
    """The server's unhandled errors among `records`, each with its traceback."""
    fmt = logging.Formatter("%(name)s %(levelname)s: %(message)s")
    return [
        fmt.format(r)  # with the traceback, when the record has one
        for r in records
        if r.levelno >= logging.ERROR and not _aiohttp_refused_request(r)
    ]


async def _document(base: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/openapi.json") as r:
        assert r.status == 200, await r.text()
        return await r.json()


def _operations(doc: dict[str, Any]) -> set[str]:
    """Every documented operation but GET /openapi.json: schemathesis leaves
    out the one that serves the document it reads."""
    return {
        f"{method.upper()} {path}"
        for path, ops in doc["paths"].items()
        for method in ops
        if path != "/openapi.json"
    }


async def _schemathesis(base: str, workdir: Path, headers: list[str]) -> tuple[int, str, Path]:
    """Runs `schemathesis run` on the server's document; its exit code, its
    output and its JUnit report (one test case per operation)."""
    junit = workdir / "junit.xml"
    args = [
        *("run", f"{base}/openapi.json", "--checks", ",".join(CHECKS)),
        *("--phases", "examples,coverage,fuzzing,stateful", "--mode", "all"),
        *("--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED)),
        # no example database: each run draws exactly what the seed gives
        *("--generation-database", "none", "--workers", "2"),
        *("--request-timeout", str(REQUEST_TIMEOUT), "--no-color"),
        *("--report", "junit", "--report-junit-path", str(junit)),
    ]
    for header in headers:
        args += ["--header", header]
    # its own folder: schemathesis reads a config file from, and writes
    # its caches to, the working directory
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schemathesis.cli",
        *args,
        cwd=workdir,
        env={**os.environ, "NO_COLOR": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"schemathesis did not finish within {RUN_TIMEOUT} s") from None
    text = out.decode(errors="replace")
    (workdir / "schemathesis.txt").write_text(text)
    return proc.returncode, text, junit


def _junit_cases(junit: Path) -> dict[str, str]:
    """Operation -> passed, failure, error or skipped, from the JUnit report."""
    cases = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                outcome = tag
        cases[case.get("name")] = outcome
    return cases


@pytest.mark.parametrize("with_token", [True, False], ids=["token", "no-token"])
async def test_schemathesis_finds_no_undocumented_or_failed_answer(
    fuzz_server, database_url, tmp_path, caplog, with_token
):
    """Every operation of /openapi.json, fuzzed by schemathesis: no 5xx,
    only documented statuses, content types and bodies; no server crash."""
    base = fuzz_server.base
    doc = await _document(base)
    headers = []
    if with_token:
        await asyncio.to_thread(add_user, database_url, "fuzzer", ("manager",))
        async with aiohttp.ClientSession() as http:
            headers.append(f"Authorization: Bearer {await login(http, base, 'fuzzer')}")

    code, out, junit = await _schemathesis(base, tmp_path, headers)

    problems = []
    if code != 0:
        problems.append("schemathesis failed:\n" + out[out.find("FAILURES") :][-20000:])
    cases = _junit_cases(junit) if junit.exists() else {}
    untested = {op: cases.get(op, "not run") for op in _operations(doc)}
    untested = {
        op: outcome for op, outcome in untested.items() if outcome in ("skipped", "not run")
    }
    if untested:
        problems.append(f"operations schemathesis did not test: {untested}\n{out[-3000:]}")
    problems += [f"the server logged an unhandled error: {c}" for c in crashes(caplog.records)]
    assert not problems, "\n\n".join(problems)


# ---- hostile bodies ------------------------------------------------------

FIELDS = ["username", "password", "title", "amount", "owner_id", "muted", "min_priority", "kinds"]
NASTY_TEXT = ["", "\x00", "a\x00b", "\ud800", "\udfff", "x\ud83d", "\u202e", "𝕏" * 3, "é"]
NASTY_NUMBERS = [
    0,
    -1,
    2**63,
    -(2**63) - 1,
    10**400,
    1e308,
    5e-324,
    float("nan"),
    float("inf"),
    float("-inf"),
    999_999_999_999.99,
    999_999_999_999.995,
    0.001,
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(NASTY_NUMBERS)
    | st.floats()
    | st.text(st.characters(exclude_categories=()), max_size=40)
    | st.sampled_from(NASTY_TEXT)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=30,
)
# objects shaped like the operations' bodies, fields of any value
shaped = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=len(FIELDS))


def _encode(value: Any, ascii_only: bool) -> bytes:
    """JSON text of `value`; without the ASCII escapes a lone surrogate
    becomes bytes that are not UTF-8, which the server must refuse too."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def _nested(depth: int, opener: str) -> bytes:
    closer = {"[": "]", '{"a":': "}"}[opener]
    inner = "1" if opener != "[" else ""
    return (opener * depth + inner + closer * depth).encode()


bodies = st.one_of(
    st.builds(_encode, shaped, st.booleans()),
    st.builds(_encode, json_values, st.booleans()),
    st.builds(_nested, st.integers(1, MAX_BODY // 6), st.sampled_from(["[", '{"a":'])),
    st.binary(max_size=64),
    st.integers(MAX_BODY - 2, MAX_BODY + 2).map(lambda n: b" " * (n - 2) + b"{}"),
)


def _post(base: str, method: str, path: str, body: bytes, token: str | None):
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=REQUEST_TIMEOUT)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


def _check_answer(doc, method, template, body, status, content_type, raw) -> None:
    op = doc["paths"][template][method.lower()]
    sent = f"{method} {template} with {body[:100]!r}{'...' if len(body) > 100 else ''}"
    sent += f" ({len(body)} bytes)"
    assert status < 500, f"{sent} answered {status}: {raw[:500]!r}"
    assert str(status) in op["responses"], f"{sent}: undocumented {status}: {raw!r}"
    assert content_type.startswith("application/json"), f"{sent}: {content_type}: {raw!r}"
    schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator({**schema, "components": doc["components"]}).validate(
        json.loads(raw)
    )


BODY_OPERATIONS = [
    ("POST", "/auth/login"),
    ("POST", "/deals"),
    ("POST", "/deals/{id}/payments"),
    ("PUT", "/preferences"),
]


@pytest.mark.parametrize(("method", "template"), BODY_OPERATIONS)
async def test_hostile_json_bodies_get_a_documented_4xx(
    fuzz_server, database_url, caplog, method, template
):
    """An operation that takes a body answers hostile bodies with a
    documented status and body, never a 5xx, and the server logs no crash."""
    base = fuzz_server.base
    doc = await _document(base)
    with_body = {
        (m.upper(), p)
        for p, ops in doc["paths"].items()
        for m, op in ops.items()
        if "requestBody" in op
    }
    assert with_body == set(BODY_OPERATIONS), "BODY_OPERATIONS must list every body of the API"
    await asyncio.to_thread(add_user, database_url, "fuzzer", ("manager",))
    async with aiohttp.ClientSession() as http:
        token = await login(http, base, "fuzzer")
        async with http.post(
            f"{base}/deals",
            json={"title": "Fuzzed", "amount": 1},
            headers={"Authorization": f"Bearer {token}"},
        ) as r:
            assert r.status == 201, await r.text()
            deal_id = (await r.json())["deal"]["id"]
    path = template.replace("{id}", str(deal_id))
    auth = None if template == "/auth/login" else token

    def fuzz() -> None:

        @settings(
            max_examples=BODY_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(body=bodies)
        # the boundaries a random draw may miss: nesting past the parser's
        # recursion limit (far past: while hypothesis runs it raises the
        # process's limit, the server's included, by about 2000 frames), an
        # integer past Python's 4300 digits, the size limit
        @example(body=_nested(20_000, "["))
        @example(body=_nested(8_000, '{"a":'))
        @example(body=b'{"amount": ' + b"1" * 5000 + b', "title": "x"}')
        @example(body=b'{"username": "\\ud800", "password": "\\u0000", "title": "\\udfff"}')
        @example(body=b" " * MAX_BODY + b"{}")
        def one(body: bytes) -> None:
            seen = len(caplog.records)
            status, content_type, raw = _post(base, method, path, body, auth)
            _check_answer(doc, method, template, body, status, content_type, raw)
            found = crashes(caplog.records[seen:])
            assert not found, "\n".join(found)

        one()

    # in a thread: the server answers on this event loop meanwhile
    await asyncio.to_thread(fuzz)
    assert not crashes(caplog.records), "\n".join(crashes(caplog.records))
