"""Usage records: one row per generation, the ground truth billing builds on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

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
    """Usage totals per account, project, key, model or day (UTC), largest cost first."""
    column = {
        "account": UsageRecord.account_id,
        "project": func.coalesce(UsageRecord.project_id, ""),
        "key": func.coalesce(UsageRecord.api_key_id, ""),
        "model": UsageRecord.model,
        "day": func.date(UsageRecord.created_at),
    }[group_by]
    query = select(
        column,
        func.count(),
        func.sum(UsageRecord.prompt_tokens),
        func.sum(UsageRecord.cached_tokens),
        func.sum(UsageRecord.completion_tokens),
        func.sum(UsageRecord.cost_micro),
    ).group_by(column)
    if account_id is not None:
        query = query.where(UsageRecord.account_id == account_id)
    if project_id is not None:
        query = query.where(UsageRecord.project_id == project_id)
    if since is not None:
        query = query.where(UsageRecord.created_at >= since)
    if until is not None:
        query = query.where(UsageRecord.created_at < until)
    rows = [
        UsageRow(str(g), int(n), int(p or 0), int(c or 0), int(o or 0), int(cost or 0))
        for g, n, p, c, o, cost in await session.execute(query)
    ]
    return sorted(rows, key=lambda row: (-row.cost_micro, row.group))
