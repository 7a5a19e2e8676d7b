"""Balances and their ledger: every change is an entry, written with the change."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from moonbase.store.tables import Account, LedgerEntry


@dataclass(frozen=True)
class Balances:
    cash_micro: int
    voucher_micro: int

    @property
    def available_micro(self) -> int:
        # The platform's rule: arrears in cash hide the cash, not the voucher.
        if self.cash_micro >= 0:
            return self.cash_micro + self.voucher_micro
        return self.voucher_micro


async def balances(session: AsyncSession, account_id: str) -> Balances | None:
    """The account's committed balances; None if there is no such account."""
    row = (
        await session.execute(
            select(Account.cash_micro, Account.voucher_micro).where(Account.id == account_id)
        )
    ).one_or_none()
    return Balances(row.cash_micro, row.voucher_micro) if row is not None else None


async def lock_account(session: AsyncSession, account_id: str) -> Account | None:
    """The account row, locked until the transaction ends (PostgreSQL; SQLite
    transactions are serialised by BEGIN IMMEDIATE)."""
    return await session.scalar(select(Account).where(Account.id == account_id).with_for_update())


def apply(
    session: AsyncSession | Session,
    account: Account,
    *,
    kind: str,
    cash_micro: int,
    voucher_micro: int,
    reason: str,
    reference: str | None = None,
) -> None:
    """Change a locked account's balances and append the matching entry (written
    with the transaction's other changes when it commits)."""
    account.cash_micro += cash_micro
    account.voucher_micro += voucher_micro
    if kind == "topup":
        account.topped_up_micro += cash_micro
    session.add(
        LedgerEntry(
            account_id=account.id,
            kind=kind,
            cash_micro=cash_micro,
            voucher_micro=voucher_micro,
            reason=reason,
            reference=reference,
        )
    )


async def totals(session: AsyncSession, account_id: str) -> Balances:
    """Balances recomputed from the ledger alone (for audits and tests)."""
    row = (
        await session.execute(
            select(
                func.coalesce(func.sum(LedgerEntry.cash_micro), 0),
                func.coalesce(func.sum(LedgerEntry.voucher_micro), 0),
            ).where(LedgerEntry.account_id == account_id)
        )
    ).one()
    return Balances(int(row[0]), int(row[1]))
