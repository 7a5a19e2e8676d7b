"""Failed sign-ins per email over a sliding window, shared by every gateway
through the database (the organisation service's sign-in throttle)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from moonbase.store.tables import FailedSignIn


def email_hash(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()


async def record(session: AsyncSession, email: str, at: datetime, expired_before: datetime) -> str:
    """Count a failure of ``email`` at ``at`` (its id) and forget everyone's
    failures from before ``expired_before``."""
    await session.execute(delete(FailedSignIn).where(FailedSignIn.failed_at < expired_before))
    row = FailedSignIn(id=secrets.token_hex(16), email_hash=email_hash(email), failed_at=at)
    session.add(row)
    return row.id


async def since(session: AsyncSession, email: str, start: datetime) -> tuple[int, datetime | None]:
    """How many failures ``email`` has had from ``start`` on, and the oldest's time."""
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(FailedSignIn.failed_at)).where(
                FailedSignIn.email_hash == email_hash(email), FailedSignIn.failed_at >= start
            )
        )
    ).one()
    return int(count), oldest


async def drop(session: AsyncSession, failure_id: str) -> None:
    await session.execute(delete(FailedSignIn).where(FailedSignIn.id == failure_id))


async def forgive(session: AsyncSession, email: str) -> None:
    """Forget ``email``'s failures (it signed in)."""
    await session.execute(delete(FailedSignIn).where(FailedSignIn.email_hash == email_hash(email)))
