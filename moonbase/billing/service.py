"""Admission (balance and rate limits) before a request; the charge after it.

Admission touches no database: balances and limits come from the account
cache and the counts from the rate limiter (``billing.limiter``). The charge,
its ledger entry and the usage record commit in one transaction, with the
account row locked (PostgreSQL ``FOR UPDATE``; SQLite serialises writers) and
changed in place, so money and usage always agree and concurrent requests
on any number of gateways never lose an update. Online requests that end
together share one transaction (a group commit); each still waits for its
own charge to be durable before its response completes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from moonbase.billing.account_cache import AccountCache
from moonbase.billing.limiter import Admitted, LocalLimiter, RateLimiter
from moonbase.billing.money import to_micro
from moonbase.billing.pricing import DEFAULT_PRICES, Price, TokenUsage, cost_micro
from moonbase.errors import NotFoundError, QuotaExceededError
from moonbase.settings import BillingSettings
from moonbase.store.database import Database
from moonbase.store.repositories import ledger
from moonbase.store.repositories import usage as usage_repo
from moonbase.store.repositories.api_keys import KeyOwner
from moonbase.store.tables import Account


@dataclass(frozen=True)
class Settlement:
    """One generation to charge; ``keep`` (a batch line's result) commits with it."""

    ticket: Ticket
    record: usage_repo.GenerationUsage
    batch: bool = False
    keep: Callable[[Session], bool] | None = None


@dataclass(frozen=True)
class Ticket:
    """A request let in: settle or release it exactly once."""

    request_id: str
    caller: KeyOwner
    started: float  # time.monotonic() at admission, for latency
    admitted: Admitted | None = None  # its place in the rate-limit counts


def _suspended(account_id: str) -> QuotaExceededError:
    return QuotaExceededError(
        f"Your account {account_id} is suspended, please check your plan and "
        "billing details (available balance is not positive)",
        code="exceeded_current_quota",
    )


class BillingService:
    def __init__(
        self,
        db: Database,
        settings: BillingSettings,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._prices = {**DEFAULT_PRICES, **settings.prices}
        self._accounts = AccountCache(db, settings.state_refresh_s)
        self._limiter = limiter or LocalLimiter()
        self._queue: list[tuple[Settlement, asyncio.Future[int]]] = []
        self._flusher: asyncio.Task[None] | None = None

    def price(self, model_id: str) -> Price:
        return self._prices[model_id]

    async def admit(self, caller: KeyOwner, request_id: str, estimated_tokens: int) -> Ticket:
        state = await self._accounts.get(caller.account_id)
        if self._settings.charging and state.balances.available_micro <= 0:
            raise _suspended(caller.account_id)
        admitted = None
        if self._settings.rate_limits:
            admitted = await self._limiter.admit(
                caller.account_id, state.limits, request_id, estimated_tokens
            )
        return Ticket(request_id, caller, time.monotonic(), admitted)

    async def ensure_funded(self, account_id: str) -> None:
        """QuotaExceededError unless the account may spend (a read, no admission)."""
        if not self._settings.charging:
            return
        if (await self.balances(account_id)).available_micro <= 0:
            raise _suspended(account_id)

    async def settle(
        self, ticket: Ticket, record: usage_repo.GenerationUsage, *, batch: bool = False
    ) -> int:
        """Charge what was used and record it; returns the cost in micro-yuan.

        Returns once the charge is committed, in a transaction shared with
        the other requests that ended meanwhile."""
        # Generation is over: the request stops counting as in flight now.
        await self._finish(ticket, record.prompt_tokens + record.completion_tokens)
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append((Settlement(ticket, record, batch), done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="billing-group-commit")
        return await asyncio.shield(done)

    async def _flush(self) -> None:
        """Commit what is queued, then what queued meanwhile, until nothing is left."""
        while self._queue:
            group, self._queue = self._queue, []
            try:
                costs = await self.settle_many([settlement for settlement, _ in group])
            except Exception as exc:  # each waiting request reports it
                for _, done in group:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for (_, done), cost in zip(group, costs, strict=True):
                    if not done.done():
                        done.set_result(cost)

    async def settle_many(self, settlements: list[Settlement]) -> list[int]:
        """Charge and record several generations in one transaction (a group
        commit); each one's ``keep`` runs first, in the same transaction, and a
        generation whose result is not kept is not charged. Returns the costs."""
        costs, accounts = await self._db.write_sync(
            lambda session: self._charge_all(session, settlements)
        )
        for account in accounts:  # committed: the freshest state there is
            self._accounts.update(account)
        return costs

    def _charge_all(
        self, session: Session, settlements: list[Settlement]
    ) -> tuple[list[int], list[Account]]:
        costs: list[int] = []
        accounts: dict[str, Account] = {}
        for item in settlements:
            account_id = item.ticket.caller.account_id
            if account_id not in accounts:
                locked = select(Account).where(Account.id == account_id).with_for_update()
                account = session.scalar(locked)
                assert account is not None
                accounts[account_id] = account
            if item.keep is not None and not item.keep(session):
                costs.append(0)
                continue
            costs.append(self._charge(session, accounts[account_id], item))
        return costs, list(accounts.values())

    def _charge(self, session: Session, account: Account, item: Settlement) -> int:
        ticket, record = item.ticket, item.record
        discount = self._settings.batch_discount if item.batch else Decimal(1)
        tokens = TokenUsage(record.prompt_tokens, record.cached_tokens, record.completion_tokens)
        cost = cost_micro(self.price(record.model), tokens, discount)
        latency_ms = int((time.monotonic() - ticket.started) * 1000)
        if self._settings.charging and cost:
            from_voucher = min(cost, max(account.voucher_micro, 0))
            ledger.apply(
                session,
                account,
                kind="charge",
                cash_micro=-(cost - from_voucher),
                voucher_micro=-from_voucher,
                reason=f"chat completion, {record.model}",
                reference=ticket.request_id,
            )
        usage_repo.record(session, replace(record, cost_micro=cost, latency_ms=latency_ms))
        return cost

    async def release(self, ticket: Ticket) -> None:
        """The request ended before generating anything: no charge, no record."""
        await self._finish(ticket, 0)

    async def _finish(self, ticket: Ticket, tokens: int) -> None:
        if ticket.admitted is not None:
            await self._limiter.finish(ticket.caller.account_id, ticket.admitted, tokens)

    async def close(self) -> None:
        if self._flusher is not None:
            await self._flusher
        await self._limiter.close()

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
            ledger.apply(
                session,
                account,
                kind=kind,
                cash_micro=0 if kind == "voucher" else micro,
                voucher_micro=micro if kind == "voucher" else 0,
                reason=reason,
                reference=reference,
            )
            balances = ledger.Balances(account.cash_micro, account.voucher_micro)
        self._accounts.update(account)
        return balances
