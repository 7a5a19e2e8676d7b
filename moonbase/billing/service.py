"""Admission (balance and rate limits) before a request; the charge after it.

Admission touches no database: balances and limits come from the account
cache, a project's own limits with its caller (``billing.project_limits``),
and the counts from the rate limiter (``billing.limiter``). The charge,
its ledger entry and the usage record commit in one transaction, with the
account rows locked (PostgreSQL ``FOR UPDATE``; SQLite serialises writers)
and changed in place, so money and usage always agree and concurrent
requests on any number of gateways never lose an update. The statements are
the charges repository's (``store.repositories.charges``); billing decides
the price and which balance pays.

Online requests do not wait for that transaction. A finished request's charge
goes to the journal (``billing.journal``: survives a crash) and to a queue
that one task commits in groups, every ``commit_interval_s``. Until a charge
commits, this process counts it against the account's balance at admission,
so arrears stay bounded as if it had committed at once.

No charge can hold up the others. A group the database refuses is committed
one charge at a time: one refused for what it holds goes to the dead letters
(``billing.dead_letters``) and the rest commit; only an unreachable database
makes charges wait (in the queue and the journal) and retry. Nothing waits on
the queue forever: shutdown gives it ``shutdown_flush_s`` and leaves the rest
in the journal for the next start, and reads of balances wait at most
``read_wait_s`` for this process's own charges.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy.engine import Connection

from moonbase import bounds
from moonbase.auth.actor import SYSTEM, Actor
from moonbase.auth.caller import KeyOwner
from moonbase.billing import project_limits
from moonbase.billing.account_cache import AccountCache
from moonbase.billing.budgets import ProjectBudgets
from moonbase.billing.dead_letters import DeadLetters
from moonbase.billing.journal import ChargeJournal, Entry, orphans
from moonbase.billing.limiter import Admitted, InUse, LocalLimiter, RateLimiter
from moonbase.billing.money import MAX_BALANCE_MICRO, amount_problem, to_micro, to_yuan
from moonbase.billing.pricing import DEFAULT_PRICES, Price, TokenUsage, cost_micro
from moonbase.billing.tiers import Limits
from moonbase.errors import BadRequestError, NotFoundError, QuotaExceededError
from moonbase.settings import BillingSettings
from moonbase.store.database import Database, unreachable
from moonbase.store.repositories import audit, charges, ledger
from moonbase.store.repositories import usage as usage_repo
from moonbase.store.repositories.charges import AccountRow
from moonbase.store.tables import utcnow

log = logging.getLogger(__name__)

RETRY_S = 1.0  # between attempts while the database cannot be reached


@dataclass(frozen=True)
class Settlement:
    """One generation to charge; ``keep`` (a batch line's result) commits with it."""

    ticket: Ticket
    record: usage_repo.GenerationUsage
    batch: bool = False
    keep: Callable[[Connection], bool] | None = None


@dataclass
class Ticket:
    """A request let in: settled or released once (a second call does nothing)."""

    request_id: str
    caller: KeyOwner
    started: float  # time.monotonic() at admission, for latency
    admitted: Admitted | None = None  # its place in the rate-limit counts
    reserved: int = 0  # micro-yuan held against the balance until it settles
    closed: bool = False
    project_admitted: Admitted | None = None  # its place in its project's counts, if limited


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
        on_dead_letter: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._prices = {**DEFAULT_PRICES, **settings.prices}
        self._accounts = AccountCache(db, settings.state_refresh_s)
        self.budgets = ProjectBudgets(db, settings.state_refresh_s)
        self._limiter = limiter or LocalLimiter()
        self._journal_dir = journal_dir
        self._journal = ChargeJournal(journal_dir) if journal_dir is not None else None
        self.dead_letters = DeadLetters(journal_dir)
        self._on_dead_letter = on_dead_letter
        self._queue: list[tuple[Settlement, int]] = []  # with each one's cost
        self._pending: dict[str, int] = {}  # account -> queued, uncommitted costs
        self._flusher: asyncio.Task[None] | None = None

    def price(self, model_id: str) -> Price:
        return self._prices[model_id]

    async def admit(
        self,
        caller: KeyOwner,
        request_id: str,
        estimated_tokens: int,
        max_cost_micro: int = 0,
    ) -> Ticket:
        """Let a request in, or refuse it (quota, rate limits), before any work.

        ``max_cost_micro`` (the most the request can cost) is held against the
        balance until it settles: an account is let in while its balance, less
        what its requests in flight may still cost, is positive, so concurrent
        requests overdraw it by at most one request's cost, however many there
        are."""
        account_id = caller.account_id
        state = await self._accounts.get(account_id)
        available = state.balances.available_micro - self._pending.get(account_id, 0)
        if self._settings.charging and available <= 0:
            raise _suspended(account_id)
        project = caller.project_id if self._settings.charging else None
        if project is not None and not await self.budgets.check(project):
            project = None  # no budget: nothing to hold for it
        admitted = project_admitted = None
        if self._settings.rate_limits:
            # The project's limits first: a project refused by its own limits
            # then takes no place in its organisation's counts (its other
            # projects' share). One the organisation refuses gives its place back.
            project_admitted = await self._admit_project(caller, request_id, estimated_tokens)
            try:
                admitted = await self._limiter.admit(
                    account_id, state.limits, request_id, estimated_tokens
                )
            except BaseException:
                if project_admitted is not None and caller.project_id is not None:
                    key = project_limits.counting_key(caller.project_id)
                    await self._limiter.finish(key, project_admitted, 0)
                raise
        reserved = max_cost_micro if self._settings.charging else 0
        if reserved:
            self._pending[account_id] = self._pending.get(account_id, 0) + reserved
            if project is not None:
                self.budgets.hold(project, reserved)
        return Ticket(
            request_id, caller, time.monotonic(), admitted, reserved,
            project_admitted=project_admitted,
        )  # fmt: skip

    async def _admit_project(
        self, caller: KeyOwner, request_id: str, tokens: int
    ) -> Admitted | None:
        """A place in the caller's project's own rate-limit counts (None: unlimited)."""
        limits = caller.project.limits
        if caller.project_id is None or not limits.any:
            return None
        return await self._limiter.admit(
            project_limits.counting_key(caller.project_id),
            project_limits.as_limiter_limits(limits),
            request_id,
            tokens,
            project=caller.project.name or caller.project_id,
        )

    async def check_funds(self, account_id: str) -> None:
        """QuotaExceededError if admission would refuse the account for money
        (from memory, as admission reads it; nothing is counted or held)."""
        if not self._settings.charging:
            return
        state = await self._accounts.get(account_id)
        if state.balances.available_micro - self._pending.get(account_id, 0) <= 0:
            raise _suspended(account_id)

    def max_cost(self, model_id: str, prompt_tokens: int, completion_tokens: int) -> int:
        """What a request of this size can cost at most, in micro-yuan."""
        price = self._prices.get(model_id)
        if price is None:
            return 0
        return cost_micro(price, TokenUsage(prompt_tokens, 0, completion_tokens), Decimal(1))

    def reserve(self, ticket: Ticket, max_cost_micro: int) -> None:
        """Hold ``max_cost_micro`` for ``ticket`` instead of what admission held
        (its prompt is now counted exactly, where admission could only estimate)."""
        if not self._settings.charging or ticket.closed:
            return
        account_id = ticket.caller.account_id
        self._pending[account_id] = self._pending.get(account_id, 0) + max_cost_micro
        self._take_pending(account_id, ticket.reserved)
        if ticket.caller.project_id is not None:
            self.budgets.rehold(ticket.caller.project_id, ticket.reserved, max_cost_micro)
        ticket.reserved = max_cost_micro

    def _unreserve(self, ticket: Ticket, cost: int | None = None) -> None:
        """Give back what was held for ``ticket``; ``cost``: what it came to."""
        if ticket.closed:
            return
        if ticket.reserved:
            self._take_pending(ticket.caller.account_id, ticket.reserved)
        if ticket.caller.project_id is not None and self._settings.charging:
            self.budgets.settle(ticket.caller.project_id, ticket.reserved, cost)
        ticket.closed = True

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
        # Generation is over: the request stops counting as in flight now, and
        # its real cost replaces what was held for it.
        await self._finish(ticket, record.prompt_tokens + record.completion_tokens)
        latency_ms = int((time.monotonic() - ticket.started) * 1000)
        record = replace(record, latency_ms=latency_ms)
        cost = self._cost(record, batch)
        self._unreserve(ticket, cost)
        if self._journal is not None:
            self._journal.append(Entry(ticket.request_id, ticket.caller.key_id, record, batch))
        if self._settings.charging:
            account_id = ticket.caller.account_id
            self._pending[account_id] = self._pending.get(account_id, 0) + cost
        self._queue.append((Settlement(ticket, record, batch), cost))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="billing-group-commit")
        return cost

    async def flushed(self, at_most_s: float | None = None) -> bool:
        """Wait until every charge queued so far has committed, or ``at_most_s``
        seconds; True when nothing is left uncommitted."""
        try:
            async with asyncio.timeout(at_most_s):
                while self._flusher is not None and not self._flusher.done():
                    await asyncio.shield(self._flusher)
        except TimeoutError:
            return False
        return True

    async def _flush(self) -> None:
        """Commit what is queued, then what queued meanwhile, until nothing is left."""
        while self._queue:
            # Nobody waits on this commit: gathering a few milliseconds of
            # charges makes one transaction serve many requests.
            await asyncio.sleep(self._settings.commit_interval_s)
            group, self._queue = self._queue, []
            try:
                await self.settle_many([settlement for settlement, _ in group])
            except Exception as exc:
                if unreachable(exc):
                    log.warning("charges not committed (%s); retrying in %s s", exc, RETRY_S)
                # Each alone: the ones the database takes commit now, whatever
                # the others hold.
                waiting = [item for item in group if not await self._commit_alone(item)]
                if waiting:  # journaled still: nothing is lost meanwhile
                    self._queue[:0] = waiting
                    await asyncio.sleep(RETRY_S)
                    continue
            else:
                self._committed(group)
            if not self._queue and self._journal is not None:
                self._journal.clear()

    async def _commit_alone(self, item: tuple[Settlement, int]) -> bool:
        """Commit one charge; False if the database could not be reached (retry it)."""
        try:
            await self.settle_many([item[0]])
        except Exception as exc:
            if unreachable(exc):
                return False
            self._set_aside(item[0], exc)
        self._committed([item])
        return True

    def _set_aside(self, settlement: Settlement, exc: BaseException) -> None:
        ticket = settlement.ticket
        entry = Entry(ticket.request_id, ticket.caller.key_id, settlement.record, settlement.batch)
        self.dead_letters.add(entry, exc)
        log.error(
            "charge %s of account %s refused by the database and set aside in the dead letters: %s",
            ticket.request_id,
            ticket.caller.account_id,
            exc,
        )
        if self._on_dead_letter is not None:
            self._on_dead_letter()

    def _committed(self, group: list[tuple[Settlement, int]]) -> None:
        if not self._settings.charging:
            return
        for settlement, cost in group:
            self._take_pending(settlement.ticket.caller.account_id, cost)

    def _take_pending(self, account_id: str, micro: int) -> None:
        left = self._pending.get(account_id, 0) - micro
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
                done = await usage_repo.recorded(session, ids)
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
                recovered += await self._recover_group(missing)
                log.warning("committed %d charges left uncommitted in %s", len(missing), path)
        return recovered

    async def _recover_group(self, missing: list[Settlement]) -> int:
        """Commit a dead process's charges, setting aside any the database refuses
        (an unreachable database fails the start, and the file stays for the next)."""
        try:
            await self.settle_many(missing)
            return len(missing)
        except Exception as exc:
            if unreachable(exc):
                raise
        committed = 0
        for settlement in missing:
            try:
                await self.settle_many([settlement])
                committed += 1
            except Exception as exc:
                if unreachable(exc):
                    raise
                self._set_aside(settlement, exc)
        return committed

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
        """The group's charges: each paid from the voucher first, then cash."""
        accounts = charges.lock_accounts(
            connection, (item.ticket.caller.account_id for item in settlements)
        )
        costs: list[int] = []
        written: list[charges.Charge] = []
        for item in settlements:
            if item.keep is not None and not item.keep(connection):
                costs.append(0)
                continue
            record, account = item.record, accounts[item.ticket.caller.account_id]
            cost = self._cost(record, item.batch)
            elapsed_ms = int((time.monotonic() - item.ticket.started) * 1000)
            usage = replace(record, cost_micro=cost, latency_ms=record.latency_ms or elapsed_ms)
            charge = charges.Charge(usage)
            if self._settings.charging and cost:
                from_voucher = min(cost, max(account.voucher_micro, 0))
                account.cash_micro -= cost - from_voucher
                account.voucher_micro -= from_voucher
                charge = charges.Charge(usage, -(cost - from_voucher), -from_voucher)
            written.append(charge)
            costs.append(cost)
        charges.write(connection, written, accounts.values(), utcnow())
        return costs, list(accounts.values())

    def _cost(self, record: usage_repo.GenerationUsage, batch: bool) -> int:
        discount = self._settings.batch_discount if batch else Decimal(1)
        tokens = TokenUsage(record.prompt_tokens, record.cached_tokens, record.completion_tokens)
        return cost_micro(self.price(record.model), tokens, discount)

    async def release(self, ticket: Ticket) -> None:
        """The request ended before generating anything: no charge, no record.
        Nothing happens if it was settled or released already."""
        await self._finish(ticket, 0)
        self._unreserve(ticket)

    async def _finish(self, ticket: Ticket, tokens: int) -> None:
        if ticket.closed:
            return
        if ticket.admitted is not None:
            await self._limiter.finish(ticket.caller.account_id, ticket.admitted, tokens)
        if ticket.project_admitted is not None and ticket.caller.project_id is not None:
            key = project_limits.counting_key(ticket.caller.project_id)
            await self._limiter.finish(key, ticket.project_admitted, tokens)

    async def close(self) -> None:
        """Commit what is queued (for at most ``shutdown_flush_s``), then let go of
        the journal and the limiter. What could not commit stays in the journal,
        and the next start on this data directory commits it."""
        if not await self.flushed(self._settings.shutdown_flush_s):
            log.error(
                "%d charges not committed at shutdown; kept in the journal for the next start",
                len(self._queue),
            )
            if self._flusher is not None:
                self._flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._flusher
        if self._journal is not None:
            self._journal.close()
        await self._limiter.close()

    async def tier_and_limits(self, account_id: str) -> tuple[int, Limits]:
        """The account's tier and rate limits, as admission reads them."""
        state = await self._accounts.get(account_id)
        return state.tier, state.limits

    async def in_use(self, account_id: str) -> InUse:
        """What counts against the account's rate limits now (the limiter's
        counts: this process's, or every gateway's with Redis)."""
        return await self._limiter.in_use(account_id)

    async def project_in_use(self, project_id: str) -> InUse:
        """What counts against a project's own rate limits now."""
        return await self._limiter.in_use(project_limits.counting_key(project_id))

    async def caught_up(self) -> None:
        """Before a read of usage or balances: this process's queued charges
        committed, waiting at most ``read_wait_s`` (a database that refuses
        them must not hang the reader; it then reads without them)."""
        await self.flushed(self._settings.read_wait_s)

    async def project_usage(
        self, project_id: str, group_by: str, since: datetime
    ) -> list[usage_repo.UsageRow]:
        """A project's usage since ``since`` (this process's charges committed first)."""
        await self.caught_up()
        async with self._db.read() as session:
            return await usage_repo.summarize(session, group_by, since=since, project_id=project_id)

    async def balances(self, account_id: str) -> ledger.Balances:
        """The committed balances, once this process's queued charges commit
        (waiting at most ``read_wait_s``: a database that refuses them must not
        hang the caller; the balance is then read without them)."""
        await self.caught_up()
        async with self._db.read() as session:
            found = await ledger.balances(session, account_id)
        if found is None:
            raise NotFoundError("account not found")
        return found

    async def credit(
        self,
        account_id: str,
        kind: str,
        yuan: Decimal,
        reason: str,
        reference: str | None = None,
        actor: Actor | None = None,
    ) -> ledger.Balances:
        """Top up cash, grant a voucher, or adjust/refund cash (operator actions),
        recorded in the audit log in the same transaction."""
        problem = amount_problem(yuan) or bounds.LEDGER_REASON.check(reason, "reason")
        if problem is None and reference is not None:
            problem = bounds.LEDGER_REFERENCE.check(reference, "reference")
        if problem is not None:
            raise BadRequestError(problem, param="amount" if "amount" in problem else None)
        micro = to_micro(yuan)
        if kind == "voucher" and micro < 0:
            raise BadRequestError("a voucher grant must be positive", param="amount")
        async with self._db.transaction() as session:
            account = await ledger.lock_account(session, account_id)
            if account is None:
                raise NotFoundError(f"no account {account_id}")
            cash = account.cash_micro + (0 if kind == "voucher" else micro)
            voucher = account.voucher_micro + (micro if kind == "voucher" else 0)
            if max(abs(cash), voucher, account.topped_up_micro + max(micro, 0)) > MAX_BALANCE_MICRO:
                raise BadRequestError(
                    "the balance would exceed what an account can hold", param="amount"
                )
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
            details = {"amount": str(yuan), "reason": reason, "reference": reference,
                       "cash_balance": str(to_yuan(balances.cash_micro)),
                       "voucher_balance": str(to_yuan(balances.voucher_micro))}  # fmt: skip
            audit.record(session, actor or SYSTEM, f"account.{kind}", account_id, account_id,
                         details)  # fmt: skip
        self._accounts.update(account)
        return balances
