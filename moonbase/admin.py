"""Operator actions behind the CLI: first-run bootstrap and key management."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from moonbase.billing.money import to_micro
from moonbase.settings import BillingSettings
from moonbase.store.database import Database
from moonbase.store.repositories import accounts, api_keys, ledger
from moonbase.store.repositories.api_keys import IssuedKey

DEFAULT_ACCOUNT = "default"


@dataclass(frozen=True)
class KeyListing:
    id: str
    account: str
    name: str
    display: str
    created_at: datetime
    revoked_at: datetime | None


async def bootstrap(db: Database, billing: BillingSettings) -> IssuedKey | None:
    """On an empty store, create the owner's account and key; None if one exists.

    The owner starts with a voucher and a tier (both configurable) so that a
    newcomer can use the API at once.
    """
    await db.migrate()
    try:
        async with db.transaction() as session:
            if await accounts.count(session) > 0:
                return None
            account = await accounts.create(session, DEFAULT_ACCOUNT)
            account.tier_override = billing.owner_tier
            voucher = to_micro(billing.owner_voucher_yuan)
            if voucher:
                await ledger.apply(
                    session,
                    account,
                    kind="voucher",
                    cash_micro=0,
                    voucher_micro=voucher,
                    reason="owner's starting voucher",
                )
            return await api_keys.create(session, account.id, name="first key")
    except IntegrityError:  # another replica bootstrapped at the same moment
        return None


async def create_key(db: Database, account_name: str, name: str = "") -> IssuedKey:
    """A new key for ``account_name``, creating the account if it is new."""
    await db.migrate()
    async with db.transaction() as session:
        account = await accounts.get_by_name(session, account_name)
        if account is None:
            account = await accounts.create(session, account_name)
        return await api_keys.create(session, account.id, name=name)


async def list_keys(db: Database) -> list[KeyListing]:
    await db.migrate()
    async with db.transaction() as session:
        rows = await api_keys.list_all(session)
    return [
        KeyListing(key.id, account, key.name, key.display, key.created_at, key.revoked_at)
        for key, account in rows
    ]


async def revoke_key(db: Database, key_id: str) -> bool:
    await db.migrate()
    async with db.transaction() as session:
        return await api_keys.revoke(session, key_id)
