"""Files: rows describing blobs, always looked up within one project of one account.

A file belongs to the project of the key that uploaded it; a row without a
project (none is left after migration 0010, but a gateway of the previous
release may still write one during a rolling upgrade) belongs to the
account's default project, as the migration would have put it. Quotas stay
per account: projects share their organisation's file count and bytes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from moonbase.store.repositories.projects import default_project_id, owning
from moonbase.store.tables import StoredFile


def new_file_id() -> str:
    return "file-" + secrets.token_hex(12)


@dataclass(frozen=True)
class AccountFiles:
    count: int
    bytes: int


async def totals(session: AsyncSession, account_id: str) -> AccountFiles:
    row = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(StoredFile.bytes), 0)).where(
                StoredFile.account_id == account_id
            )
        )
    ).one()
    return AccountFiles(count=int(row[0]), bytes=int(row[1]))


def _visible(account_id: str, project_id: str | None) -> ColumnElement[bool]:
    """The files of ``project_id`` (None: the account's default project)."""
    project = owning(account_id, project_id)
    mine = StoredFile.project_id == project
    if project == default_project_id(account_id):
        mine = mine | StoredFile.project_id.is_(None)
    return (StoredFile.account_id == account_id) & mine


async def get(
    session: AsyncSession, account_id: str, file_id: str, project_id: str | None
) -> StoredFile | None:
    return await session.scalar(
        select(StoredFile).where(StoredFile.id == file_id, _visible(account_id, project_id))
    )


async def page(
    session: AsyncSession,
    account_id: str,
    project_id: str | None,
    *,
    purpose: str | None,
    limit: int,
    after: str | None,
) -> list[StoredFile]:
    """Newest first; ``after`` is the id of the last file of the previous page."""
    query = select(StoredFile).where(_visible(account_id, project_id))
    if purpose is not None:
        query = query.where(StoredFile.purpose == purpose)
    if after is not None:
        anchor = await get(session, account_id, after, project_id)
        if anchor is not None:
            query = query.where(
                (StoredFile.created_at < anchor.created_at)
                | ((StoredFile.created_at == anchor.created_at) & (StoredFile.id < anchor.id))
            )
    query = query.order_by(StoredFile.created_at.desc(), StoredFile.id.desc()).limit(limit)
    return list((await session.scalars(query)).all())


async def remove(
    session: AsyncSession, account_id: str, file_id: str, project_id: str | None
) -> StoredFile | None:
    stored = await get(session, account_id, file_id, project_id)
    if stored is not None:
        await session.execute(delete(StoredFile).where(StoredFile.id == file_id))
    return stored
