"""Test accounts with money and limits."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select, update

from moonbase import admin
from moonbase.billing.service import BillingService
from moonbase.settings import BillingSettings
from moonbase.store.database import Database
from moonbase.store.repositories import ledger
from moonbase.store.repositories import usage as usage_repo
from moonbase.store.tables import Account, ApiKey, LedgerEntry


async def funded_account(
    db: Database,
    name: str,
    *,
    cash: str = "0",
    voucher: str = "0",
    tier: int | None = 5,
    **limits: int,
) -> tuple[str, str]:
    """(account id, API key) of a new account with the given money and limits."""
    issued = await admin.create_key(db, name)
    async with db.transaction() as session:
        account_id = await session.scalar(select(ApiKey.account_id).where(ApiKey.id == issued.id))
        assert account_id is not None
        values = {"tier_override": tier, **{f"limit_{k}": v for k, v in limits.items()}}
        await session.execute(update(Account).where(Account.id == account_id).values(values))
    billing = BillingService(db, BillingSettings())
    if Decimal(cash):
        await billing.credit(account_id, "topup", Decimal(cash), "test top-up")
    if Decimal(voucher):
        await billing.credit(account_id, "voucher", Decimal(voucher), "test voucher")
    return account_id, issued.secret


async def books(db: Database, account_id: str):
    """Everything money-related about an account, read back from the store."""
    async with db.transaction() as session:
        account = await session.get(Account, account_id)
        assert account is not None
        entries = list(
            await session.scalars(select(LedgerEntry).where(LedgerEntry.account_id == account_id))
        )
        records = await usage_repo.for_account(session, account_id)
        from_ledger = await ledger.totals(session, account_id)
    return account, entries, records, from_ledger
