"""Settings of the example, all read from the environment (README.md lists
them). Nothing secret is written here: the shared pgbell secret and Django's
own key come from the environment or the process does not start."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from psycopg.conninfo import conninfo_to_dict

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = os.environ.get("DJANGO_DEBUG", "").lower() in ("1", "true", "yes", "on")

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set (or set DJANGO_DEBUG=1 for development)"
        )
    # Made up per process rather than committed: a known key would let anyone
    # forge sessions. Sessions then end when the server restarts.
    SECRET_KEY = "django-insecure-" + secrets.token_urlsafe(48)

ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
    if h.strip()
]


def _database(url: str) -> dict:
    """A libpq URL as Django's DATABASES entry: libpq itself parses it, so
    percent-escapes and query parameters (sslmode=...) mean what they mean
    to psql; whatever has no Django key of its own goes to OPTIONS."""
    if not url:
        raise ImproperlyConfigured(
            "DATABASE_URL is not set (a libpq URL: postgresql://user@host:port/db)"
        )
    try:
        params = conninfo_to_dict(url)
    except Exception as e:  # psycopg.ProgrammingError; the message names the problem
        raise ImproperlyConfigured(f"DATABASE_URL is not a libpq URL: {e}") from None
    return {
        # psycopg 3 is installed, so Django's postgresql backend uses it
        "ENGINE": "django.db.backends.postgresql",
        "NAME": params.pop("dbname", ""),
        "USER": params.pop("user", ""),
        "PASSWORD": params.pop("password", ""),
        "HOST": params.pop("host", ""),
        "PORT": params.pop("port", ""),
        "OPTIONS": params,
    }


DATABASES = {"default": _database(os.environ.get("DATABASE_URL", ""))}

# pgbell: where its server answers (the page loads the client from there and
# opens its /ws), and the token settings it is configured with too.
PGBELL_URL = os.environ.get("PGBELL_URL", "http://127.0.0.1:8080").rstrip("/")
PGBELL_JWT_SECRET = os.environ.get("PGBELL_JWT_SECRET", "")
if len(PGBELL_JWT_SECRET.encode()) < 32:
    # pgbell refuses to start with a shorter one; fail here too, not at the first token
    raise ImproperlyConfigured(
        "PGBELL_JWT_SECRET must be set, at least 32 bytes, and the same as pgbell's"
    )
PGBELL_JWT_AUDIENCE = os.environ.get("PGBELL_JWT_AUDIENCE", "")
PGBELL_JWT_ISSUER = os.environ.get("PGBELL_JWT_ISSUER", "")
# pgbell closes a socket when its token runs out; the page then asks for a new one
try:
    PGBELL_JWT_TTL = int(os.environ.get("PGBELL_JWT_TTL") or 3600)
except ValueError:
    raise ImproperlyConfigured("PGBELL_JWT_TTL must be a number of seconds") from None

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "tasks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "bellsite.urls"
WSGI_APPLICATION = "bellsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ],
        },
    },
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "index"
LOGOUT_REDIRECT_URL = "login"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
