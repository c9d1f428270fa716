"""Configuration fails closed: no key source, a short secret, the example
secret or a bad public key stop `pgbell serve` with a message that names
the variables; .env.example explains exactly what config.py reads."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pgbell import config
from pgbell.config import ConfigError, Settings

ROOT = Path(__file__).resolve().parent.parent
ENV_EXAMPLE = ROOT / ".env.example"
URL = "postgresql://pgbell@127.0.0.1:5432/pgbell"


def _example() -> dict[str, str]:
    pairs = re.findall(r"^(PGBELL_\w+|DATABASE_URL)=(.*)$", ENV_EXAMPLE.read_text(), re.M)
    return dict(pairs)


def test_env_example_lists_exactly_the_variables_config_reads():
    read = set(re.findall(r'"(PGBELL_\w+)"', Path(config.__file__).read_text()))
    assert read == set(_example()) - {"DATABASE_URL"}


def test_the_example_secret_is_refused():
    example = _example()["PGBELL_JWT_SECRET"]
    assert example == config.PLACEHOLDER_SECRET
    with pytest.raises(ConfigError, match="example value from .env.example"):
        Settings.from_env({"DATABASE_URL": URL, "PGBELL_JWT_SECRET": example})


def test_no_key_source_is_refused_naming_the_variables():
    with pytest.raises(ConfigError) as e:
        Settings.from_env({"DATABASE_URL": URL})
    for name in ("PGBELL_JWT_SECRET", "PGBELL_JWT_PUBLIC_KEY", "PGBELL_JWT_JWKS_URL"):
        assert name in str(e.value)


def test_a_secret_shorter_than_32_bytes_is_refused():
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        Settings.from_env({"DATABASE_URL": URL, "PGBELL_JWT_SECRET": "x" * 31})
    # bytes, not characters: 11 three-byte characters are 33 bytes
    assert Settings.from_env({"DATABASE_URL": URL, "PGBELL_JWT_SECRET": "€" * 11}).jwt_secret


def _pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def test_a_public_key_alone_is_a_key_source_inline_escaped_or_a_file(tmp_path):
    pem = _pem()
    path = tmp_path / "app.pem"
    path.write_text(pem)
    for value in (pem, pem.replace("\n", "\\n"), str(path)):
        s = Settings.from_env({"DATABASE_URL": URL, "PGBELL_JWT_PUBLIC_KEY": value})
        assert s.jwt_secret == "" and s.jwt_public_key
    assert (
        "\\n"
        not in Settings.from_env(
            {"DATABASE_URL": URL, "PGBELL_JWT_PUBLIC_KEY": pem.replace("\n", "\\n")}
        ).jwt_public_key
    )


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"PGBELL_JWT_PUBLIC_KEY": "/nonexistent/app.pem"}, "PGBELL_JWT_PUBLIC_KEY: public key"),
        ({"PGBELL_JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\nnope"}, "PGBELL_JWT_PUBLIC_KEY"),
        ({"PGBELL_JWT_JWKS_URL": "ftp://idp.example/jwks"}, "PGBELL_JWT_JWKS_URL"),
        ({"PGBELL_JWT_JWKS_URL": "idp.example/jwks"}, "PGBELL_JWT_JWKS_URL"),
        (
            {"PGBELL_JWT_JWKS_URL": "https://idp.example/jwks", "PGBELL_JWT_USER_CLAIM": "a b\n"},
            "PGBELL_JWT_USER_CLAIM",
        ),
        (
            {"PGBELL_JWT_JWKS_URL": "https://idp.example/jwks", "PGBELL_MAX_SOCKETS_PER_USER": "0"},
            "PGBELL_MAX_SOCKETS_PER_USER",
        ),
    ],
    ids=["key-file-missing", "key-garbage", "jwks-scheme", "jwks-relative", "claim", "sockets"],
)
def test_bad_token_settings_name_the_variable(env, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        Settings.from_env({"DATABASE_URL": URL, **env})


def test_pgbell_serve_refuses_to_start_without_a_key_and_says_which_variables():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGBELL_")}
    env["DATABASE_URL"] = URL
    out = subprocess.run(
        [sys.executable, "-m", "pgbell", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "PGBELL_JWT_SECRET" in out.stderr and "PGBELL_JWT_JWKS_URL" in out.stderr
    assert "serving on" not in out.stdout


def test_workers_default_to_the_cores_this_process_may_use():
    settings = Settings.from_env({"DATABASE_URL": URL, "PGBELL_JWT_SECRET": "s" * 32})
    assert settings.workers == len(os.sched_getaffinity(0))
    again = Settings.from_env(
        {"DATABASE_URL": URL, "PGBELL_JWT_SECRET": "s" * 32, "PGBELL_WORKERS": "3"}
    )
    assert again.workers == 3
