"""Accounts: who owns keys, usage and (later) balance."""

from __future__ import annotations

import secrets

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from moonbase.store.repositories import projects
from moonbase.store.tables import Account


def new_account_id() -> str:
    return "acct-" + secrets.token_hex(12)


async def create(session: AsyncSession, name: str) -> Account:
    """A new account, with its default project."""
    account = Account(id=new_account_id(), name=name)
    session.add(account)
    await session.flush()
    session.add(projects.new_default(account.id))
    await session.flush()
    return account


async def get_by_name(session: AsyncSession, name: str) -> Account | None:
    return await session.scalar(select(Account).where(Account.name == name))


async def count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Account)) or 0)


async def get(session: AsyncSession, account_id: str) -> Account | None:
    return await session.get(Account, account_id)


async def ids(session: AsyncSession, limit: int) -> list[str]:
    return list(await session.scalars(select(Account.id).order_by(Account.id).limit(limit)))
