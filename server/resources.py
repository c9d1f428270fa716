"""What pgbell needs at run time and ships inside the package: its SQL and
the demo page, found with importlib.resources wherever pgbell is installed
(a wheel in site-packages, or this checkout in editable mode)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def package_dir(package: str) -> Path:
    """The folder of `package` on disk. pgbell is installed as files (a wheel
    unpacked into site-packages), never imported from a zip: alembic and the
    static file server both need real paths."""
    folder = files(package)
    if not isinstance(folder, Path):
        raise RuntimeError(f"{package} is not installed as files on disk ({folder!r})")
    return folder


def sql_dir() -> Path:
    """db/: schema.sql, triggers/ and migrations/."""
    return package_dir("pgbell.db")


def client_dir() -> Path:
    """client_demo/: the browser client and demo page."""
    return package_dir("pgbell.client_demo")
