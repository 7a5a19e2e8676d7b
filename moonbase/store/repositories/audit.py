"""The audit log: one row per operator change, written in the change's own
transaction, so a change never lands without its record (nor a record
without its change)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from moonbase.auth.actor import Actor
from moonbase.store.tables import AuditEvent

MAX_PAGE = 1000


@dataclass(frozen=True)
class AuditView:
    id: int
    at: datetime
    actor: str
    address: str | None
    action: str
    target: str
    account_id: str | None
    changes: dict[str, Any]


def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    target: str,
    account_id: str | None,
    changes: dict[str, Any],
) -> None:
    session.add(
        AuditEvent(
            actor=actor.who,
            address=actor.address,
            action=action,
            target=target,
            account_id=account_id,
            changes=json.dumps(changes, default=str, ensure_ascii=False),
        )
    )


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """{field: [before, after]} for the fields that changed."""
    return {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}


async def events(
    session: AsyncSession,
    account_id: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
    *,
    actor: str | None = None,
    action: str | None = None,
) -> list[AuditView]:
    """The newest events first (of one account's, when given; older than
    ``before_id``, when given: the next page; by an actor whose name contains
    ``actor``; of actions starting with ``action``: "key." for every key's)."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(min(limit, MAX_PAGE + 1))
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    if account_id is not None:
        query = query.where(AuditEvent.account_id == account_id)
    if actor:
        query = query.where(AuditEvent.actor.contains(actor, autoescape=True))
    if action:
        query = query.where(AuditEvent.action.startswith(action, autoescape=True))
    return [
        AuditView(
            row.id,
            row.at,
            row.actor,
            row.address,
            row.action,
            row.target,
            row.account_id,
            json.loads(row.changes),
        )
        for row in await session.scalars(query)
    ]
