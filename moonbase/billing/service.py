"""Admission (balance and rate limits) before a request; the charge after it.

The charge, its ledger entry, the usage record and the end of the request's
admission commit in one transaction, so money and usage always agree. The
account row is locked for both steps (PostgreSQL ``FOR UPDATE``; SQLite
serialises writers), so concurrent requests and several gateway processes
never lose an update or slip past a limit together.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from moonbase.billing.money import to_micro
from moonbase.billing.pricing import DEFAULT_PRICES, Price, TokenUsage, cost_micro
from moonbase.billing.tiers import Limits, tier_for
from moonbase.errors import NotFoundError, QuotaExceededError, RateLimitError
from moonbase.settings import BillingSettings
from moonbase.store.database import Database
from moonbase.store.repositories import admissions, ledger
from moonbase.store.repositories import usage as usage_repo
from moonbase.store.repositories.api_keys import KeyOwner
from moonbase.store.tables import Account

# Admission rows older than a day count toward no limit; delete them this often.
PRUNE_EVERY = 1000


@dataclass(frozen=True)
class Settlement:
    """One generation to charge; ``keep`` (a batch line's result) commits with it."""

    ticket: Ticket
    record: usage_repo.GenerationUsage
    batch: bool = False
    keep: Callable[[AsyncSession], Awaitable[bool]] | None = None


@dataclass(frozen=True)
class Ticket:
    """A request let in: settle or release it exactly once."""

    request_id: str
    caller: KeyOwner
    started: float  # time.monotonic() at admission, for latency


def limits_of(account: Account) -> Limits:
    base = tier_for(account.topped_up_micro, account.tier_override).limits
    return Limits(
        concurrency=account.limit_concurrency or base.concurrency,
        rpm=account.limit_rpm or base.rpm,
        tpm=account.limit_tpm or base.tpm,
        tpd=account.limit_tpd or base.tpd,
    )


class BillingService:
    def __init__(
        self, db: Database, settings: BillingSettings, clock: Callable[[], float] = time.time
    ) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock
        self._prices = {**DEFAULT_PRICES, **settings.prices}
        self._admitted = 0  # admissions by this process, to prune old counters now and then

    def price(self, model_id: str) -> Price:
        return self._prices[model_id]

    async def admit(self, caller: KeyOwner, request_id: str, estimated_tokens: int) -> Ticket:
        now = self._clock()
        async with self._db.transaction() as session:
            account = await ledger.lock_account(session, caller.account_id)
            if account is None:
                raise NotFoundError("account not found")
            balances = ledger.Balances(account.cash_micro, account.voucher_micro)
            if self._settings.charging and balances.available_micro <= 0:
                raise QuotaExceededError(
                    f"Your account {account.id} is suspended, please check your plan and "
                    "billing details (available balance is not positive)",
                    code="exceeded_current_quota",
                )
            if self._settings.rate_limits:
                used = await admissions.usage(session, account.id, now)
                _check_limits(account.id, limits_of(account), used, estimated_tokens, now)
            await admissions.admit(session, account.id, request_id, estimated_tokens, now)
            self._admitted += 1
            if self._admitted % PRUNE_EVERY == 0:
                await admissions.prune(session, now)
        return Ticket(request_id, caller, time.monotonic())

    async def ensure_funded(self, account_id: str) -> None:
        """QuotaExceededError unless the account may spend (a read, no admission)."""
        if not self._settings.charging:
            return
        if (await self.balances(account_id)).available_micro <= 0:
            raise QuotaExceededError(
                f"Your account {account_id} is suspended, please check your plan "
                "and billing details (available balance is not positive)",
                code="exceeded_current_quota",
            )

    async def settle(
        self, ticket: Ticket, record: usage_repo.GenerationUsage, *, batch: bool = False
    ) -> int:
        """Charge what was used and record it; returns the cost in micro-yuan."""
        (cost,) = await self.settle_many([Settlement(ticket, record, batch)])
        return cost

    async def settle_many(self, settlements: list[Settlement]) -> list[int]:
        """Charge and record several generations in one transaction (a batch's group
        commit); each one's ``keep`` runs first, in the same transaction, and a
        generation whose result is not kept is not charged. Returns the costs."""
        costs: list[int] = []
        async with self._db.transaction() as session:
            accounts: dict[str, Account] = {}
            for item in settlements:
                account_id = item.ticket.caller.account_id
                if account_id not in accounts:
                    account = await ledger.lock_account(session, account_id)
                    assert account is not None
                    accounts[account_id] = account
                if item.keep is not None and not await item.keep(session):
                    costs.append(0)
                    continue
                costs.append(await self._charge(session, accounts[account_id], item))
        return costs

    async def _charge(self, session: AsyncSession, account: Account, item: Settlement) -> int:
        ticket, record = item.ticket, item.record
        discount = self._settings.batch_discount if item.batch else Decimal(1)
        tokens = TokenUsage(record.prompt_tokens, record.cached_tokens, record.completion_tokens)
        cost = cost_micro(self.price(record.model), tokens, discount)
        latency_ms = int((time.monotonic() - ticket.started) * 1000)
        if self._settings.charging and cost:
            from_voucher = min(cost, max(account.voucher_micro, 0))
            await ledger.apply(
                session,
                account,
                kind="charge",
                cash_micro=-(cost - from_voucher),
                voucher_micro=-from_voucher,
                reason=f"chat completion, {record.model}",
                reference=ticket.request_id,
            )
        await usage_repo.record(session, replace(record, cost_micro=cost, latency_ms=latency_ms))
        await admissions.finish(
            session, ticket.request_id, record.prompt_tokens + record.completion_tokens
        )
        return cost

    async def release(self, ticket: Ticket) -> None:
        """The request ended before generating anything: no charge, no record."""
        async with self._db.transaction() as session:
            await admissions.finish(session, ticket.request_id, tokens=0)

    async def balances(self, account_id: str) -> ledger.Balances:
        async with self._db.read() as session:
            account = await session.get(Account, account_id)
            if account is None:
                raise NotFoundError("account not found")
            return ledger.Balances(account.cash_micro, account.voucher_micro)

    async def credit(
        self, account_id: str, kind: str, yuan: Decimal, reason: str, reference: str | None = None
    ) -> ledger.Balances:
        """Top up cash, grant a voucher, or adjust/refund cash (operator actions)."""
        micro = to_micro(yuan)
        if kind == "voucher" and micro < 0:
            raise ValueError("a voucher grant must be positive")
        async with self._db.transaction() as session:
            account = await ledger.lock_account(session, account_id)
            if account is None:
                raise NotFoundError(f"no account {account_id}")
            await ledger.apply(
                session,
                account,
                kind=kind,
                cash_micro=0 if kind == "voucher" else micro,
                voucher_micro=micro if kind == "voucher" else 0,
                reason=reason,
                reference=reference,
            )
            return ledger.Balances(account.cash_micro, account.voucher_micro)


def _check_limits(
    account_id: str, limits: Limits, used: admissions.Usage, tokens: int, now: float
) -> None:
    window_left = (
        max(1, math.ceil(used.oldest_in_minute + admissions.MINUTE - now))
        if used.oldest_in_minute is not None
        else 1
    )

    def refuse(what: str, limit: int, retry_after: int) -> RateLimitError:
        return RateLimitError(
            f"Your account {account_id} request reached max {what}: {limit}, "
            f"please try again after {retry_after} seconds",
            code=f"{what.lower()}_limit",
            headers={"retry-after": str(retry_after)},
        )

    if used.in_flight >= limits.concurrency:
        raise refuse("concurrency", limits.concurrency, 1)
    if used.requests_last_minute >= limits.rpm:
        raise refuse("RPM", limits.rpm, window_left)
    if used.tokens_last_minute + tokens > limits.tpm:
        raise refuse("TPM", limits.tpm, window_left)
    if limits.tpd is not None and used.tokens_last_day + tokens > limits.tpd:
        raise refuse("TPD", limits.tpd, 3600)
