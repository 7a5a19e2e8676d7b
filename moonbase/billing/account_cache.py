"""What admission needs of an account (balances, limits), kept in memory.

Admission reads no database: a request is let in against this process's
copy, reloaded when older than ``refresh_s`` and replaced by the fresh row
after every charge this process commits. So this process sees its own
charges at once; a top-up, a limit change or another gateway's charges
within ``refresh_s``. Charges themselves always update the row in the
database (never a write-back of this copy), so no update is ever lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from moonbase.billing.tiers import Limits, tier_for
from moonbase.errors import NotFoundError
from moonbase.store.database import Database
from moonbase.store.repositories.charges import AccountRow
from moonbase.store.repositories.ledger import Balances
from moonbase.store.tables import Account
from moonbase.ttl_cache import TtlCache


@dataclass(frozen=True)
class AccountState:
    balances: Balances
    limits: Limits
    tier: int = 0


def limits_of(account: Account | AccountRow) -> Limits:
    base = tier_for(account.topped_up_micro, account.tier_override).limits
    return Limits(
        concurrency=account.limit_concurrency or base.concurrency,
        rpm=account.limit_rpm or base.rpm,
        tpm=account.limit_tpm or base.tpm,
        tpd=account.limit_tpd or base.tpd,
    )


class AccountCache:
    def __init__(
        self, db: Database, refresh_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._db = db
        self._states: TtlCache[str, AccountState] = TtlCache(lambda _: refresh_s, clock)

    async def get(self, account_id: str) -> AccountState:
        async def load() -> AccountState:
            async with self._db.read() as session:
                account = await session.get(Account, account_id)
            if account is None:
                raise NotFoundError("account not found")
            return _state(account)

        return await self._states.get(account_id, load)

    def update(self, account: Account | AccountRow) -> AccountState:
        """Take a row just read or committed as the current state."""
        state = _state(account)
        self._states.put(account.id, state)
        return state


def _state(account: Account | AccountRow) -> AccountState:
    tier = tier_for(account.topped_up_micro, account.tier_override).level
    return AccountState(
        Balances(account.cash_micro, account.voucher_micro), limits_of(account), tier
    )
