"""Batches and their lines, always looked up within one project of one account
(or claimed by a worker). A batch without a project (written by a gateway of
the previous release) belongs to the account's default project, as for files."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, case, delete, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from moonbase.store.repositories.projects import default_project_id, owning
from moonbase.store.tables import Batch, BatchLine

# States a worker still has work in.
ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
CANCELLABLE = ("validating", "in_progress", "finalizing")


def new_batch_id() -> str:
    # Time first, so that ids sort in creation order (created_at is whole seconds).
    return f"batch-{time.time_ns():016x}{secrets.token_hex(6)}"


def visible(account_id: str, project_id: str | None) -> ColumnElement[bool]:
    """The batches of ``project_id`` (None: the account's default project)."""
    project = owning(account_id, project_id)
    mine = Batch.project_id == project
    if project == default_project_id(account_id):
        mine = mine | Batch.project_id.is_(None)
    return (Batch.account_id == account_id) & mine


async def get(
    session: AsyncSession, account_id: str, batch_id: str, project_id: str | None
) -> Batch | None:
    return await session.scalar(
        select(Batch).where(Batch.id == batch_id, visible(account_id, project_id))
    )


async def lock(session: AsyncSession, batch_id: str) -> Batch | None:
    return await session.scalar(select(Batch).where(Batch.id == batch_id).with_for_update())


async def lock_visible(
    session: AsyncSession, account_id: str, batch_id: str, project_id: str | None
) -> Batch | None:
    """Lock the batch if the caller's project may see it."""
    return await session.scalar(
        select(Batch).where(Batch.id == batch_id, visible(account_id, project_id)).with_for_update()
    )


async def page(
    session: AsyncSession,
    account_id: str,
    project_id: str | None,
    *,
    limit: int,
    after: str | None,
) -> list[Batch]:
    """Newest first; ``after`` is the last id of the previous page."""
    query = select(Batch).where(visible(account_id, project_id))
    if after is not None:
        anchor = await get(session, account_id, after, project_id)
        if anchor is not None:
            query = query.where(
                (Batch.created_at < anchor.created_at)
                | ((Batch.created_at == anchor.created_at) & (Batch.id < anchor.id))
            )
    query = query.order_by(Batch.created_at.desc(), Batch.id.desc()).limit(limit)
    return list((await session.scalars(query)).all())


async def claim(session: AsyncSession, worker: str, now: float, hold: float) -> Batch | None:
    """Take an active batch nobody holds (SKIP LOCKED: workers never wait on
    each other): of the account whose active batches were served least
    recently (never first; one a worker holds counts as served now), that
    account's least recently served, oldest first. Accounts take turns, and
    an account's batches take turns among themselves."""
    others = aliased(Batch)
    served = case((others.claim_until >= now, now), else_=others.served_at)  # held: served now
    account_served = (
        select(func.max(served))
        .where(others.account_id == Batch.account_id, others.status.in_(ACTIVE))
        .scalar_subquery()
    )
    batch = await session.scalar(
        select(Batch)
        .where(
            Batch.status.in_(ACTIVE),
            (Batch.claim_until.is_(None)) | (Batch.claim_until < now),
        )
        .order_by(
            account_served.asc().nulls_first(),
            Batch.served_at.asc().nulls_first(),
            Batch.created_at,
            Batch.id,
        )
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if batch is not None:
        batch.claimed_by = worker
        batch.claim_until = now + hold
    return batch


async def replace_lines(session: AsyncSession, batch_id: str, lines: Sequence[BatchLine]) -> None:
    await session.execute(delete(BatchLine).where(BatchLine.batch_id == batch_id))
    session.add_all(lines)


async def pending(
    session: AsyncSession, batch_id: str, limit: int, after: int = 0
) -> list[BatchLine]:
    """Pending lines numbered above ``after``, in order."""
    query = (
        select(BatchLine)
        .where(
            BatchLine.batch_id == batch_id,
            BatchLine.status == "pending",
            BatchLine.line > after,
        )
        .order_by(BatchLine.line)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


def finish_line(
    connection: Connection, line_id: int, batch_id: str, ok: bool, result_json: str
) -> bool:
    """Record a line's result once; False if it was already recorded. Synchronous:
    it runs in the transaction that charges the line (``Database.write_sync``)."""
    done = connection.execute(
        update(BatchLine)
        .where(BatchLine.id == line_id, BatchLine.status == "pending")
        .values(status="done" if ok else "failed", result_json=result_json)
    )
    if done.rowcount != 1:
        return False
    counter = Batch.completed if ok else Batch.failed
    connection.execute(update(Batch).where(Batch.id == batch_id).values({counter: counter + 1}))
    return True


async def results(
    session: AsyncSession, batch_id: str, status: str, after: int, limit: int
) -> list[tuple[int, str]]:
    """(line, result) of lines in ``status`` numbered above ``after``, in order."""
    query = (
        select(BatchLine.line, BatchLine.result_json)
        .where(BatchLine.batch_id == batch_id, BatchLine.status == status, BatchLine.line > after)
        .order_by(BatchLine.line)
        .limit(limit)
    )
    return [(line, result) for line, result in (await session.execute(query)).all() if result]


@dataclass(frozen=True)
class Overview:
    """What the batch gauges show: batches by status, and the lines of the open ones."""

    by_status: dict[str, int]
    open_total: int
    open_completed: int
    open_failed: int


async def overview(session: AsyncSession) -> Overview:
    by_status = await session.execute(select(Batch.status, func.count()).group_by(Batch.status))
    open_lines = await session.execute(
        select(
            func.coalesce(func.sum(Batch.total), 0),
            func.coalesce(func.sum(Batch.completed), 0),
            func.coalesce(func.sum(Batch.failed), 0),
        ).where(Batch.status.in_(CANCELLABLE))  # unfinished, not yet being cancelled
    )
    total, completed, failed = open_lines.one()
    counts = {status: int(count) for status, count in by_status.all()}
    return Overview(counts, int(total), int(completed), int(failed))
