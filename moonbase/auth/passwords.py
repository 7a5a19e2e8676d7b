"""Users' passwords: argon2id through argon2-cffi, with its RFC 9106 low-memory
profile (t=3, m=64 MiB, p=4).

A hash costs ~50 ms of a core and 64 MiB, on purpose; so hashing runs on a
pool of its own (``MAX_AT_ONCE`` threads: the event loop keeps answering, and
the shared default pool that uploads and prompt rendering use is never
queued behind sign-ins), and beyond ``MAX_WAITING`` queued hashes a sign-in
is refused (429) rather than queued: a flood of sign-ins, which needs no
credentials, cannot take the gateway's cores or memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from moonbase.errors import BadRequestError, RateLimitError

MIN_LENGTH = 10
MAX_AT_ONCE = 2
MAX_WAITING = 32

T = TypeVar("T")
_hasher = PasswordHasher()
_pool = ThreadPoolExecutor(max_workers=MAX_AT_ONCE, thread_name_prefix="argon2")
_queued = 0  # hashes submitted and not finished (touched on event-loop threads only)


@functools.cache
def _decoy() -> str:
    """Verified against when a sign-in names no user, so an unknown email costs
    what a wrong password costs (the time does not tell which emails exist)."""
    return _hasher.hash("moonbase-decoy-password")


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise BadRequestError(
            f"password must be at least {MIN_LENGTH} characters", param="password"
        )
    if not password.strip():
        raise BadRequestError("password must not be only spaces", param="password")


@contextlib.contextmanager
def place() -> Iterator[None]:
    """A place in the pool's queue, or a 429 beyond ``MAX_WAITING``. A sign-in
    takes it before its first write and keeps it through its check, so a
    flood is refused before it reaches the database, and a sign-in that
    wrote its attempt is never refused by the pool after."""
    global _queued
    if _queued >= MAX_WAITING:
        raise RateLimitError("Too many sign-ins at once; try again in a moment", retry_after=1)
    _queued += 1
    try:
        yield
    finally:
        _queued -= 1


async def _run(work: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(_pool, work)


async def hash_password(password: str) -> str:
    check_strength(password)
    with place():
        return await _run(functools.partial(_hasher.hash, password))


async def verify(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (None: no such user;
    answered in the same time as a wrong password). Called within ``place()``."""
    return await _run(functools.partial(_verify, password_hash, password))


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        ok = _hasher.verify(password_hash or _decoy(), password)
    except (VerificationError, InvalidHashError):
        return False
    return ok and password_hash is not None
