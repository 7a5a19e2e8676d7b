"""Admission (balance and rate limits) before a request; the charge after it.

Admission touches no database: balances and limits come from the account
cache and the counts from the rate limiter (``billing.limiter``). The charge,
its ledger entry and the usage record commit in one transaction, with the
account rows locked (PostgreSQL ``FOR UPDATE``; SQLite serialises writers)
and changed in place, so money and usage always agree and concurrent
requests on any number of gateways never lose an update.

Online requests do not wait for that transaction. A finished request's charge
goes to the journal (``billing.journal``: survives a crash) and to a queue
that one task commits in groups, every ``commit_interval_s``. Until a charge
commits, this process counts it against the account's balance at admission,
so arrears stay bounded as if it had committed at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from moonbase.billing.account_cache import ACCOUNT_COLUMNS, AccountCache, AccountRow
from moonbase.billing.journal import ChargeJournal, Entry, orphans
from moonbase.billing.limiter import Admitted, LocalLimiter, RateLimiter
from moonbase.billing.money import to_micro
from moonbase.billing.pricing import DEFAULT_PRICES, Price, TokenUsage, cost_micro
from moonbase.errors import NotFoundError, QuotaExceededError
from moonbase.settings import BillingSettings
from moonbase.store.database import Database
from moonbase.store.repositories import ledger
from moonbase.store.repositories import usage as usage_repo
from moonbase.store.repositories.api_keys import KeyOwner
from moonbase.store.tables import Account, LedgerEntry, UsageRecord, utcnow

log = logging.getLogger(__name__)

RETRY_S = 1.0  # between attempts while the database refuses a group's commit

# The charge's statements, built once (building them per request cost more
# than SQLite spends running them).
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


@dataclass(frozen=True)
class Settlement:
    """One generation to charge; ``keep`` (a batch line's result) commits with it."""

    ticket: Ticket
    record: usage_repo.GenerationUsage
    batch: bool = False
    keep: Callable[[Connection], bool] | None = None


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
        journal_dir: Path | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._prices = {**DEFAULT_PRICES, **settings.prices}
        self._accounts = AccountCache(db, settings.state_refresh_s)
        self._limiter = limiter or LocalLimiter()
        self._journal_dir = journal_dir
        self._journal = ChargeJournal(journal_dir) if journal_dir is not None else None
        self._queue: list[tuple[Settlement, int]] = []  # with each one's cost
        self._pending: dict[str, int] = {}  # account -> queued, uncommitted costs
        self._flusher: asyncio.Task[None] | None = None

    def price(self, model_id: str) -> Price:
        return self._prices[model_id]

    async def admit(self, caller: KeyOwner, request_id: str, estimated_tokens: int) -> Ticket:
        state = await self._accounts.get(caller.account_id)
        available = state.balances.available_micro - self._pending.get(caller.account_id, 0)
        if self._settings.charging and available <= 0:
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

        The charge is journaled and queued here, and committed by the group
        commit right after (``flushed`` waits for it)."""
        # Generation is over: the request stops counting as in flight now.
        await self._finish(ticket, record.prompt_tokens + record.completion_tokens)
        latency_ms = int((time.monotonic() - ticket.started) * 1000)
        record = replace(record, latency_ms=latency_ms)
        cost = self._cost(record, batch)
        if self._journal is not None:
            self._journal.append(Entry(ticket.request_id, ticket.caller.key_id, record, batch))
        if self._settings.charging:
            account_id = ticket.caller.account_id
            self._pending[account_id] = self._pending.get(account_id, 0) + cost
        self._queue.append((Settlement(ticket, record, batch), cost))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="billing-group-commit")
        return cost

    async def flushed(self) -> None:
        """Wait until every charge queued so far has committed."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def _flush(self) -> None:
        """Commit what is queued, then what queued meanwhile, until nothing is left."""
        while self._queue:
            # Nobody waits on this commit: gathering a few milliseconds of
            # charges makes one transaction serve many requests.
            await asyncio.sleep(self._settings.commit_interval_s)
            group, self._queue = self._queue, []
            try:
                await self.settle_many([settlement for settlement, _ in group])
            except IntegrityError:
                # A charge the database refuses (its request already recorded, an
                # account deleted): commit the others, report it, drop it.
                for item in group:
                    await self._commit_alone(item)
            except Exception:
                log.exception("charges not committed; retrying in %s s", RETRY_S)
                self._queue[:0] = group  # journaled still: nothing is lost meanwhile
                await asyncio.sleep(RETRY_S)
                continue
            else:
                self._committed(group)
            if not self._queue and self._journal is not None:
                self._journal.clear()

    async def _commit_alone(self, item: tuple[Settlement, int]) -> None:
        try:
            await self.settle_many([item[0]])
        except IntegrityError as exc:
            log.error("charge dropped, refused by the database: %s (%s)", item[0].record, exc)
        self._committed([item])

    def _committed(self, group: list[tuple[Settlement, int]]) -> None:
        if not self._settings.charging:
            return
        for settlement, cost in group:
            account_id = settlement.ticket.caller.account_id
            left = self._pending.get(account_id, 0) - cost
            if left > 0:
                self._pending[account_id] = left
            else:
                self._pending.pop(account_id, None)

    async def recover(self) -> int:
        """Commit the charges crashed gateways journaled here and never committed.
        Returns how many were committed (those already recorded are skipped)."""
        if self._journal_dir is None:
            return 0
        recovered = 0
        for path, entries in orphans(self._journal_dir):
            ids = [entry.request_id for entry in entries]
            async with self._db.read() as session:
                done = set(
                    await session.scalars(
                        select(UsageRecord.request_id).where(UsageRecord.request_id.in_(ids))
                    )
                )
            missing = [
                Settlement(
                    Ticket(
                        entry.request_id,
                        KeyOwner(entry.api_key_id or "", entry.record.account_id),
                        time.monotonic(),
                    ),
                    entry.record,
                    entry.batch,
                )
                for entry in entries
                if entry.request_id not in done
            ]
            if missing:
                await self.settle_many(missing)
                log.warning("committed %d charges left uncommitted in %s", len(missing), path)
            recovered += len(missing)
        return recovered

    async def settle_many(self, settlements: list[Settlement]) -> list[int]:
        """Charge and record several generations in one transaction (a group
        commit); each one's ``keep`` runs first, in the same transaction, and a
        generation whose result is not kept is not charged. Returns the costs."""
        costs, accounts = await self._db.write_sync(
            lambda connection: self._charge_all(connection, settlements)
        )
        for account in accounts:  # committed: the freshest state there is
            self._accounts.update(account)
        return costs

    def _charge_all(
        self, connection: Connection, settlements: list[Settlement]
    ) -> tuple[list[int], list[AccountRow]]:
        """The group's writes as a few statements (Core, not the ORM's unit of
        work: the charge is on every request's path). Accounts are locked in id
        order, so gateways charging the same accounts never deadlock."""
        ids = sorted({item.ticket.caller.account_id for item in settlements})
        locked = connection.execute(
            select(*ACCOUNT_COLUMNS)
            .where(Account.id.in_(ids))
            .order_by(Account.id)
            .with_for_update()
        ).all()
        accounts = {row.id: AccountRow(**row._mapping) for row in locked}
        costs: list[int] = []
        entries: list[dict[str, object]] = []
        records: list[dict[str, object]] = []
        now = utcnow()
        for item in settlements:
            if item.keep is not None and not item.keep(connection):
                costs.append(0)
                continue
            record, account = item.record, accounts[item.ticket.caller.account_id]
            discount = self._settings.batch_discount if item.batch else Decimal(1)
            tokens = TokenUsage(
                record.prompt_tokens, record.cached_tokens, record.completion_tokens
            )
            cost = cost_micro(self.price(record.model), tokens, discount)
            if self._settings.charging and cost:
                from_voucher = min(cost, max(account.voucher_micro, 0))
                account.cash_micro -= cost - from_voucher
                account.voucher_micro -= from_voucher
                entries.append(
                    {
                        "account_id": account.id,
                        "kind": "charge",
                        "cash_micro": -(cost - from_voucher),
                        "voucher_micro": -from_voucher,
                        "reason": f"chat completion, {record.model}",
                        "reference": item.ticket.request_id,
                        "created_at": now,
                    }
                )
            elapsed_ms = int((time.monotonic() - item.ticket.started) * 1000)
            latency_ms = record.latency_ms or elapsed_ms
            records.append(
                {**record.__dict__, "cost_micro": cost, "latency_ms": latency_ms, "created_at": now}
            )
            costs.append(cost)
        if entries:
            connection.execute(_ADD_ENTRIES, entries)
            changed = [
                {"account": a.id, "cash": a.cash_micro, "voucher": a.voucher_micro}
                for a in accounts.values()
            ]
            connection.execute(_SET_BALANCES, changed)
        if records:
            connection.execute(_ADD_RECORDS, records)
        return costs, list(accounts.values())

    def _cost(self, record: usage_repo.GenerationUsage, batch: bool) -> int:
        discount = self._settings.batch_discount if batch else Decimal(1)
        tokens = TokenUsage(record.prompt_tokens, record.cached_tokens, record.completion_tokens)
        return cost_micro(self.price(record.model), tokens, discount)

    async def release(self, ticket: Ticket) -> None:
        """The request ended before generating anything: no charge, no record."""
        await self._finish(ticket, 0)

    async def _finish(self, ticket: Ticket, tokens: int) -> None:
        if ticket.admitted is not None:
            await self._limiter.finish(ticket.caller.account_id, ticket.admitted, tokens)

    async def close(self) -> None:
        """Commit what is queued, then let go of the journal and the limiter."""
        await self.flushed()
        if self._journal is not None:
            self._journal.close()
        await self._limiter.close()

    async def balances(self, account_id: str) -> ledger.Balances:
        """The committed balances, after this process's queued charges commit."""
        await self.flushed()
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
