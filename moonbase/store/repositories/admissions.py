"""Rate-limit counters: one row per admitted request, in the shared database,
so the limits hold across every gateway process."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from moonbase.store.tables import Admission

MINUTE, DAY = 60.0, 86_400.0
# An unfinished admission older than this belongs to a crashed process.
STALE_AFTER = 15 * MINUTE


@dataclass(frozen=True)
class Usage:
    in_flight: int
    requests_last_minute: int
    tokens_last_minute: int
    tokens_last_day: int
    oldest_in_minute: float | None


async def usage(session: AsyncSession, account_id: str, now: float) -> Usage:
    a = Admission
    mine = a.account_id == account_id
    minute, day = a.admitted_at > now - MINUTE, a.admitted_at > now - DAY
    row = (
        await session.execute(
            select(
                func.count().filter(and_(a.finished.is_(False), a.admitted_at > now - STALE_AFTER)),
                func.count().filter(minute),
                func.coalesce(func.sum(a.tokens).filter(minute), 0),
                func.coalesce(func.sum(a.tokens).filter(day), 0),
                func.min(a.admitted_at).filter(minute),
            ).where(mine, day)
        )
    ).one()
    return Usage(int(row[0]), int(row[1]), int(row[2]), int(row[3]), row[4])


async def admit(
    session: AsyncSession, account_id: str, request_id: str, tokens: int, now: float
) -> None:
    session.add(
        Admission(
            account_id=account_id,
            request_id=request_id,
            admitted_at=now,
            tokens=tokens,
            finished=False,
        )
    )
    await session.flush()


async def finish(session: AsyncSession, request_id: str, tokens: int | None = None) -> None:
    values: dict[str, object] = {"finished": True}
    if tokens is not None:
        values["tokens"] = tokens
    await session.execute(
        update(Admission).where(Admission.request_id == request_id).values(values)
    )


async def prune(session: AsyncSession, now: float) -> None:
    await session.execute(delete(Admission).where(Admission.admitted_at < now - DAY))
