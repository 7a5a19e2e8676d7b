"""The webhook outbox: events inserted once, claimed by one sender at a time."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from moonbase.store.tables import WebhookDelivery

MAX_PAGE = 1000


async def insert_new(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert the deliveries whose idempotency key is not taken yet, in one
    statement; the keys this call inserted. The unique index decides between
    concurrent inserters (several gateways' detectors), and a conflict skips
    its row without failing the transaction (``ON CONFLICT DO NOTHING``)."""
    if not rows:
        return set()
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(WebhookDelivery)
        .values(list(rows))
        .on_conflict_do_nothing(index_elements=[WebhookDelivery.idempotency_key])
        .returning(WebhookDelivery.idempotency_key)
    )
    return set((await session.execute(statement)).scalars())


async def existing_keys(session: AsyncSession, keys: Collection[str]) -> set[str]:
    if not keys:
        return set()
    query = select(WebhookDelivery.idempotency_key).where(WebhookDelivery.idempotency_key.in_(keys))
    return set(await session.scalars(query))


def _due(now: float) -> Any:
    return (
        (WebhookDelivery.status == "pending")
        & (WebhookDelivery.next_attempt_at <= now)
        & (WebhookDelivery.claim_until.is_(None) | (WebhookDelivery.claim_until < now))
    )


async def any_due(session: AsyncSession, now: float) -> bool:
    """A plain read first, so that idle senders never take SQLite's write lock."""
    return await session.scalar(select(WebhookDelivery.id).where(_due(now)).limit(1)) is not None


async def claim(
    session: AsyncSession, sender: str, now: float, hold: float, limit: int
) -> list[WebhookDelivery]:
    """Take up to ``limit`` due deliveries, oldest due first, for ``hold``
    seconds (SKIP LOCKED: senders never wait on each other)."""
    rows = list(
        await session.scalars(
            select(WebhookDelivery)
            .where(_due(now))
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    for row in rows:
        row.claimed_by = sender
        row.claim_until = now + hold
    return rows


async def lock(session: AsyncSession, delivery_id: str) -> WebhookDelivery | None:
    return await session.scalar(
        select(WebhookDelivery).where(WebhookDelivery.id == delivery_id).with_for_update()
    )


async def of_project(session: AsyncSession, project_id: str, limit: int) -> list[WebhookDelivery]:
    """The project's deliveries, newest first."""
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.project_id == project_id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        .limit(min(limit, MAX_PAGE))
    )
    return list(await session.scalars(query))


async def last_keys(session: AsyncSession, alert_ids: Collection[str]) -> dict[str, str]:
    """Each alert's latest idempotency key (``<alert id>:<period>``)."""
    if not alert_ids:
        return {}
    query = (
        select(WebhookDelivery.alert_id, WebhookDelivery.idempotency_key)
        .where(WebhookDelivery.alert_id.in_(alert_ids))
        .order_by(WebhookDelivery.created_at)
    )
    return {alert: key for alert, key in (await session.execute(query)).all() if alert}
