"""Passwords of pgbell's own users (standalone mode): argon2id.

Knows nothing of HTTP or tokens. hash_password and verify_password are
synchronous, for the command line; the server checks passwords through
PasswordChecks, so that argon2 (tens of MiB and a few hundred
milliseconds of CPU per check) never runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verified against when the username is unknown, so that a wrong username
# costs as long as a wrong password and the two cannot be told apart.
_DUMMY_HASH = _hasher.hash("pgbell-no-such-user")

T = TypeVar("T")
LOGIN_THREAD_NICENESS = 10


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if `password` matches; an unknown user (None) is checked against
    a dummy hash, so it costs the same and is always False."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def _lower_priority() -> None:
    """Run in each password thread: let the event loop (and PostgreSQL, on
    the same machine) have the CPU first when both want it, so a login
    storm slows logins rather than everything else. Linux only: there a
    nice value belongs to one thread; elsewhere it would lower the whole
    process, the event loop with it."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.nice(LOGIN_THREAD_NICENESS)


class ChecksBusy(Exception):
    """Every slot is taken: the caller refuses rather than queue."""


class PasswordChecks:
    """Hash and verify in `threads` threads, at most `max_pending` at once.

    A check waiting for a thread or running in one holds a slot until its
    thread is done with it, even if its caller has stopped waiting: what is
    bounded is the work queued, not the callers. One more than
    `max_pending` raises ChecksBusy at once, without hashing. argon2-cffi
    releases the GIL while it hashes, so the event loop runs meanwhile.
    argon2 runs the lanes of one check (the hash's parallelism, 4 by
    default) in threads of its own, so `threads` bounds the checks under
    way, not the cores they use; those threads inherit the lower priority.
    Call from the event loop only; close() when the loop is done with it.
    """

    def __init__(self, threads: int, max_pending: int) -> None:
        self.max_pending = max_pending
        self.pending = 0
        self.refused = 0  # calls answered ChecksBusy
        self._executor = ThreadPoolExecutor(
            threads, thread_name_prefix="pgbell-password", initializer=_lower_priority
        )

    def ensure_room(self) -> None:
        """Raise ChecksBusy (and count it) if no check could start now."""
        if self.pending >= self.max_pending:
            self.refused += 1
            raise ChecksBusy

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """verify_password in a thread; raises ChecksBusy if every slot is taken."""
        return await self._run(verify_password, password_hash, password)

    async def hash(self, password: str) -> str:
        """hash_password in a thread; raises ChecksBusy if every slot is taken."""
        return await self._run(hash_password, password)

    async def _run(self, fn: Callable[..., T], *args: str | None) -> T:
        self.ensure_room()
        loop = asyncio.get_running_loop()
        done = self._executor.submit(fn, *args)
        # taken and given back on the loop: no lock, and no await in between
        self.pending += 1
        done.add_done_callback(lambda _: self._release_from(loop))
        return await asyncio.wrap_future(done)

    def _release_from(self, loop: asyncio.AbstractEventLoop) -> None:
        # runs in the worker thread (or wherever the future was cancelled)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to count
            loop.call_soon_threadsafe(self._release)

    def _release(self) -> None:
        self.pending -= 1

    def close(self) -> None:
        """Drop the checks not yet begun; a running one finishes in its thread."""
        self._executor.shutdown(wait=False, cancel_futures=True)
