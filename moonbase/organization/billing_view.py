"""What the console's billing and rate-limit pages read, for a ``Principal``.

The ledger page merges two streams, newest day first: the ledger's entries
other than charges (top-ups, vouchers, refunds, adjustments: few, read
through a partial index on ``kind <> 'charge'``), and the charges summed per
UTC day from the daily rollups (``usage_daily``), never one row per request.
A page is whole days: it ends on a day, and the next page starts before it.

The ledger is the organisation's money, every project's charges in it: only
those who see every project (owner, admin, viewer) read it; a ``member`` is
refused, as the page would show other projects' spend.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from sqlalchemy import func, select

from moonbase.auth.project_policy import ProjectLimits
from moonbase.auth.roles import Principal
from moonbase.billing.limiter import InUse
from moonbase.billing.tiers import Limits
from moonbase.errors import PermissionDeniedError
from moonbase.store.database import Database
from moonbase.store.repositories import projects
from moonbase.store.tables import LedgerEntry, UsageDaily

MAX_ROWS = 50


@dataclass(frozen=True)
class LedgerRow:
    """One line of the page: an entry (top-up, voucher, ...) or a day's charges."""

    day: date
    kind: str  # topup, voucher, refund, adjustment, ..., or "charges" (a day's)
    cash_micro: int  # what it changed (charges: their cost, negative)
    voucher_micro: int
    reason: str
    reference: str | None
    at: datetime | None  # an entry's time; None for a day's charges
    requests: int = 0  # a day's charges: how many requests


@dataclass(frozen=True)
class LedgerPage:
    rows: list[LedgerRow]
    next_before: date | None  # the day the next (older) page starts before


def require_ledger_reader(p: Principal) -> None:
    if not p.sees_all_projects:
        raise PermissionDeniedError(
            f"Your role in this organisation ({p.role}) cannot read the organisation's ledger "
            "(it holds every project's charges)",
            code="role_forbids",
        )


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


async def ledger_page(db: Database, p: Principal, before: date | None) -> LedgerPage:
    """Up to MAX_ROWS rows of whole days before ``before`` (None: from today on)."""
    require_ledger_reader(p)
    entries_q = (
        select(LedgerEntry)
        .where(LedgerEntry.account_id == p.account_id, LedgerEntry.kind != "charge")
        .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
        .limit(MAX_ROWS + 1)
    )
    days_q = (
        select(UsageDaily.day, func.sum(UsageDaily.cost_micro), func.sum(UsageDaily.requests))
        .where(UsageDaily.account_id == p.account_id)
        .group_by(UsageDaily.day)
        .order_by(UsageDaily.day.desc())
        .limit(MAX_ROWS + 1)
    )
    if before is not None:
        entries_q = entries_q.where(LedgerEntry.created_at < _midnight(before))
        days_q = days_q.where(UsageDaily.day < before)
    async with db.read() as session:
        entries = list((await session.scalars(entries_q)).all())
        days = list((await session.execute(days_q)).all())
    rows = [
        LedgerRow(
            _aware(e.created_at).date(), e.kind, e.cash_micro, e.voucher_micro, e.reason,
            e.reference, _aware(e.created_at),
        )
        for e in entries
    ]  # fmt: skip
    rows += [
        LedgerRow(day, "charges", -int(cost or 0), 0, "", None, None, int(requests or 0))
        for day, cost, requests in days
    ]
    rows.sort(key=lambda r: (r.day, r.at is None, r.at or _midnight(r.day)), reverse=True)
    # Whole days only; the last day fetched from either stream may be cut short.
    complete_after = date.min
    if len(entries) > MAX_ROWS:
        complete_after = _aware(entries[-1].created_at).date()
    if len(days) > MAX_ROWS:
        complete_after = max(complete_after, days[-1][0])
    kept: list[LedgerRow] = []
    for row in rows:
        if row.day <= complete_after:
            break
        if len(kept) >= MAX_ROWS and row.day != kept[-1].day:
            break
        kept.append(row)
    if not kept and rows:  # one day with more entries than a page: show what was read
        kept = [row for row in rows if row.day == rows[0].day]
    more = len(kept) < len(rows)
    return LedgerPage(kept, kept[-1].day if more and kept else None)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ProjectLimitsRow:
    """A project's own rate limits (None: only the organisation's of that kind)."""

    project_id: str
    name: str
    limits: ProjectLimits


@dataclass(frozen=True)
class RateLimits:
    tier: int
    limits: Limits
    in_use: InUse
    projects: list[tuple[ProjectLimitsRow, InUse]]


async def project_limits(db: Database, p: Principal) -> list[ProjectLimitsRow]:
    """The rate limits of the projects ``p`` sees (a member: theirs)."""
    async with db.read() as session:
        rows = await projects.of_account(session, p.account_id)
    return [
        ProjectLimitsRow(
            row.id,
            row.name,
            ProjectLimits(row.limit_concurrency, row.limit_rpm, row.limit_tpm, row.limit_tpd),
        )
        for row in rows
        if p.sees_project(row.id)
    ]
