"""The group commit's writes: the accounts locked, the debits, the usage
records and their daily rollups.

Core statements, built once (the charge is on every request's path; building
them per group cost more than SQLite spends running them). Billing decides
what each charge costs and which balance pays it; this module only writes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection

from moonbase.store.repositories import usage_rollups
from moonbase.store.repositories.usage import GenerationUsage
from moonbase.store.tables import Account, LedgerEntry, UsageRecord


@dataclass
class AccountRow:
    """What admission and charging read of an account (a plain row, no ORM)."""

    id: str
    cash_micro: int
    voucher_micro: int
    topped_up_micro: int
    tier_override: int | None
    limit_concurrency: int | None
    limit_rpm: int | None
    limit_tpm: int | None
    limit_tpd: int | None


ACCOUNT_COLUMNS = tuple(getattr(Account, name) for name in AccountRow.__dataclass_fields__)


@dataclass(frozen=True)
class Charge:
    """One generation's usage record (its cost set), and what it takes from
    each balance (zero or negative micro-yuan; both zero: nothing is debited)."""

    usage: GenerationUsage
    cash_micro: int = 0
    voucher_micro: int = 0


_LOCK_ACCOUNTS = (
    select(*ACCOUNT_COLUMNS)
    .where(Account.id.in_(bindparam("ids", expanding=True)))
    .order_by(Account.id)
    .with_for_update()
)
_SET_BALANCES = (
    update(Account)
    .where(Account.id == bindparam("account"))
    .values(cash_micro=bindparam("cash"), voucher_micro=bindparam("voucher"))
)
_ADD_ENTRIES = insert(LedgerEntry)
_ADD_RECORDS = insert(UsageRecord)


def lock_accounts(connection: Connection, ids: Iterable[str]) -> dict[str, AccountRow]:
    """The accounts' rows, locked for the transaction (PostgreSQL ``FOR UPDATE``)
    in id order, so gateways charging the same accounts never deadlock."""
    locked = connection.execute(_LOCK_ACCOUNTS, {"ids": sorted(set(ids))}).all()
    return {row.id: AccountRow(**row._mapping) for row in locked}


def write(
    connection: Connection,
    charges: Sequence[Charge],
    accounts: Iterable[AccountRow],
    now: datetime,
) -> None:
    """The debits as ledger entries, ``accounts``' new balances, and every
    charge's usage record and its day's rollup, in the caller's transaction.

    Every usage record is written here and nowhere else (online charges, batch
    lines, recovered journals), so the rollups see them all. The records go
    in with a plain INSERT: a request id charged already fails the transaction,
    rollup included, so nothing is counted twice."""
    entries = [
        {
            "account_id": charge.usage.account_id,
            "kind": "charge",
            "cash_micro": charge.cash_micro,
            "voucher_micro": charge.voucher_micro,
            "reason": f"chat completion, {charge.usage.model}",
            "reference": charge.usage.request_id,
            "created_at": now,
        }
        for charge in charges
        if charge.cash_micro or charge.voucher_micro
    ]
    if entries:
        connection.execute(_ADD_ENTRIES, entries)
        balances = [
            {"account": a.id, "cash": a.cash_micro, "voucher": a.voucher_micro} for a in accounts
        ]
        connection.execute(_SET_BALANCES, balances)
    if charges:
        records = [{**charge.usage.__dict__, "created_at": now} for charge in charges]
        connection.execute(_ADD_RECORDS, records)
        usage_rollups.add(connection, (charge.usage for charge in charges), now)
