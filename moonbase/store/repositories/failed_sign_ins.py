"""Failed sign-ins per email over a sliding window, shared by every gateway
through the database (the organisation service's sign-in throttle)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from moonbase.store.tables import FailedSignIn

SWEEP_ROWS = 100  # expired rows of anyone's deleted by each attempt


def email_hash(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()


async def attempt(
    session: AsyncSession, email: str, now: datetime, window_start: datetime, most: int
) -> datetime | None:
    """Record an attempt of ``email`` as a failure, unless it has had ``most``
    failures since ``window_start``: then the oldest of them (to say when to
    retry), and nothing is recorded. Attempts of one email are serialised
    (an advisory lock on PostgreSQL; SQLite's writers are one at a time), so
    the count is exact however many gateways and requests race."""
    hashed = email_hash(email)
    if session.get_bind().dialect.name == "postgresql":
        key = int(hashed[:15], 16)  # 60 bits: a bigint lock id
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    # Anyone's expired rows, a few at a time; rows another attempt holds are
    # skipped (two sweeps of the same rows must not wait on each other).
    expired = (
        select(FailedSignIn.id)
        .where(FailedSignIn.failed_at < window_start)
        .limit(SWEEP_ROWS)
        .with_for_update(skip_locked=True)
    )
    await session.execute(delete(FailedSignIn).where(FailedSignIn.id.in_(expired)))
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(FailedSignIn.failed_at)).where(
                FailedSignIn.email_hash == hashed, FailedSignIn.failed_at >= window_start
            )
        )
    ).one()
    if count >= most:
        return oldest or now
    session.add(FailedSignIn(id=secrets.token_hex(16), email_hash=hashed, failed_at=now))
    return None


async def forgive(session: AsyncSession, email: str) -> None:
    """Forget ``email``'s failures (it signed in)."""
    await session.execute(delete(FailedSignIn).where(FailedSignIn.email_hash == email_hash(email)))
