"""Users' passwords: argon2id through argon2-cffi, with its RFC 9106 low-memory
profile (t=3, m=64 MiB, p=4).

A hash costs ~50 ms of one core and 64 MiB, on purpose; so hashing runs in a
worker thread (the event loop keeps answering) and at most ``MAX_AT_ONCE``
at a time, so a burst of sign-ins cannot take the gateway's memory or cores.
"""

from __future__ import annotations

import asyncio
import functools
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from moonbase.errors import BadRequestError

MIN_LENGTH = 10
MAX_AT_ONCE = 2

_hasher = PasswordHasher()
# A thread semaphore, taken inside the worker thread: an asyncio one would be
# bound to the first event loop that used it.
_slots = threading.BoundedSemaphore(MAX_AT_ONCE)


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


async def hash_password(password: str) -> str:
    check_strength(password)
    return await asyncio.to_thread(_hash, password)


def _hash(password: str) -> str:
    with _slots:
        return _hasher.hash(password)


async def verify(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash`` (None: no such user;
    answered in the same time as a wrong password)."""
    return await asyncio.to_thread(_verify, password_hash, password)


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        with _slots:
            ok = _hasher.verify(password_hash or _decoy(), password)
    except (VerificationError, InvalidHashError):
        return False
    return ok and password_hash is not None
