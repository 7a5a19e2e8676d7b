"""Files: rows describing blobs, always looked up within one account."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

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


async def get(session: AsyncSession, account_id: str, file_id: str) -> StoredFile | None:
    return await session.scalar(
        select(StoredFile).where(StoredFile.id == file_id, StoredFile.account_id == account_id)
    )


async def page(
    session: AsyncSession,
    account_id: str,
    *,
    purpose: str | None,
    limit: int,
    after: str | None,
) -> list[StoredFile]:
    """Newest first; ``after`` is the id of the last file of the previous page."""
    query = select(StoredFile).where(StoredFile.account_id == account_id)
    if purpose is not None:
        query = query.where(StoredFile.purpose == purpose)
    if after is not None:
        anchor = await get(session, account_id, after)
        if anchor is not None:
            query = query.where(
                (StoredFile.created_at < anchor.created_at)
                | ((StoredFile.created_at == anchor.created_at) & (StoredFile.id < anchor.id))
            )
    query = query.order_by(StoredFile.created_at.desc(), StoredFile.id.desc()).limit(limit)
    return list((await session.scalars(query)).all())


async def remove(session: AsyncSession, account_id: str, file_id: str) -> StoredFile | None:
    stored = await get(session, account_id, file_id)
    if stored is not None:
        await session.execute(delete(StoredFile).where(StoredFile.id == file_id))
    return stored
