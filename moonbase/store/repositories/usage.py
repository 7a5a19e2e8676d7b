"""Usage records: one row per generation, the ground truth billing builds on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from moonbase.store.repositories import usage_rollups
from moonbase.store.tables import UsageRecord


@dataclass(frozen=True)
class GenerationUsage:
    request_id: str
    account_id: str
    api_key_id: str | None
    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    status: str
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    cost_micro: int = 0
    latency_ms: int = 0
    project_id: str | None = None


async def for_account(session: AsyncSession, account_id: str) -> list[UsageRecord]:
    rows = await session.scalars(
        select(UsageRecord).where(UsageRecord.account_id == account_id).order_by(UsageRecord.id)
    )
    return list(rows)


async def recorded(session: AsyncSession, request_ids: list[str]) -> set[str]:
    """Which of ``request_ids`` have a usage record already (were charged)."""
    found = await session.scalars(
        select(UsageRecord.request_id).where(UsageRecord.request_id.in_(request_ids))
    )
    return set(found)


async def prune_from(
    session: AsyncSession, first: int | None, count: int, before: datetime
) -> tuple[int, int | None]:
    """Delete the records older than ``before`` among ids [start, start + count),
    where start is the lowest id from ``first`` on (the lowest of all: None).
    Returns how many went, and where the next range starts: None at the end
    of the table, or once a range held nothing to delete (ids follow commit
    order, so past there the records are younger)."""
    lowest = select(func.min(UsageRecord.id))
    if first is not None:
        lowest = lowest.where(UsageRecord.id >= first)
    start = await session.scalar(lowest)
    if start is None:
        return 0, None
    in_range = (UsageRecord.id >= start, UsageRecord.id < start + count)
    result = await session.execute(
        delete(UsageRecord)
        .where(*in_range, UsageRecord.created_at < before)
        .execution_options(synchronize_session=False)
    )
    deleted = int(getattr(result, "rowcount", 0) or 0)
    return deleted, start + count if deleted else None


async def by_request_id(session: AsyncSession, request_id: str) -> UsageRecord | None:
    return await session.scalar(select(UsageRecord).where(UsageRecord.request_id == request_id))


GROUPINGS = ("account", "project", "key", "model", "day")


@dataclass(frozen=True)
class UsageRow:
    group: str
    requests: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    cost_micro: int


async def summarize(
    session: AsyncSession,
    group_by: str,
    account_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    project_id: str | None = None,
) -> list[UsageRow]:
    """Usage totals per account, project, key, model or day (UTC), largest cost
    first, read from the daily rollups.

    Usage is kept per UTC day, so a range covers whole days: ``since`` counts
    from the start of its day, and ``until`` (exclusive) up to the end of its
    day unless it is midnight itself. A range inside one day is that day."""
    first = usage_rollups.utc_day(since) if since is not None else None
    end = usage_rollups.day_after(until) if until is not None else None
    found = await usage_rollups.totals(session, group_by, account_id, first, end, project_id)
    rows = [UsageRow(group, *sums) for group, sums in found]
    return sorted(rows, key=lambda row: (-row.cost_micro, row.group))
