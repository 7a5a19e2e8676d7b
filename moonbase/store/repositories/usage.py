"""Usage records: one row per generation, the ground truth billing builds on."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
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


async def record(session: AsyncSession, usage: GenerationUsage) -> None:
    session.add(UsageRecord(**usage.__dict__))
    await session.flush()


async def for_account(session: AsyncSession, account_id: str) -> list[UsageRecord]:
    rows = await session.scalars(
        select(UsageRecord).where(UsageRecord.account_id == account_id).order_by(UsageRecord.id)
    )
    return list(rows)


async def by_request_id(session: AsyncSession, request_id: str) -> UsageRecord | None:
    return await session.scalar(select(UsageRecord).where(UsageRecord.request_id == request_id))
