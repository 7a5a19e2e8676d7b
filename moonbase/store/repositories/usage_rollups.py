"""Daily usage rollups: what reports, budgets and the usage API read.

``add`` runs in the charge's own transaction (``charges.write``), right after
the usage records are inserted: a record refused for a request id already
charged (a recovered journal, a duplicate) fails the whole transaction, so a
rollup grows exactly when its records are inserted, never twice. The group's
charges are summed per rollup row here first, then each row is one upsert
that adds to the stored sums in the database (``ON CONFLICT ... DO UPDATE SET
requests = usage_daily.requests + excluded.requests``): gateways charging at
once on PostgreSQL never overwrite each other's increments.

Reads are day-grained: ``buckets`` (one row per day and group, what the
organisation usage API is built on), and the sums that ``usage.summarize``
and ``projects.spent_since`` take from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from moonbase.store.tables import UsageDaily

if TYPE_CHECKING:  # usage.summarize reads through this module
    from moonbase.store.repositories.usage import GenerationUsage

# A rollup row's group (its primary key) and what it sums.
KEY = ("account_id", "day", "project_id", "api_key_id", "model")
SUMS = ("requests", "prompt_tokens", "cached_tokens", "completion_tokens", "cost_micro")
# No project or no key is "" in a rollup (see tables.UsageDaily), None outside.
NONE = ""


def _upsert(insert: Any) -> Any:
    statement = insert(UsageDaily)
    return statement.on_conflict_do_update(
        index_elements=list(KEY),
        set_={name: getattr(UsageDaily, name) + statement.excluded[name] for name in SUMS},
    )


# Built once: the charge is on every request's path.
_UPSERTS = {"sqlite": _upsert(sqlite.insert), "postgresql": _upsert(postgresql.insert)}


def _in_utc(moment: datetime) -> datetime:
    """An aware datetime in UTC; a naive one is taken as UTC already. Times
    at the ends of the calendar stay there (a report asked for "until
    9999-12-31T23:00-05:00" is a range, not a server error)."""
    if moment.tzinfo is None:
        return moment
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return datetime.min if moment.year == 1 else datetime.max


def utc_day(moment: datetime) -> date:
    """The UTC day of ``moment``."""
    return _in_utc(moment).date()


def day_after(until: datetime) -> date:
    """The first day past a range that ends (exclusive) at ``until``: its own
    day at midnight, else the next one (the day it ends in counts whole)."""
    moment = _in_utc(until)
    day = moment.date()
    if moment.time() == time() or day == date.max:
        return day
    return day + timedelta(days=1)


def add(connection: Connection, records: Iterable[GenerationUsage], now: datetime) -> None:
    """Add the records (all written at ``now``) to their day's rollups, in the
    caller's transaction, one upsert per rollup row."""
    day = utc_day(now)
    rows: dict[tuple[str, ...], list[int]] = {}
    for record in records:
        key = (
            record.account_id,
            record.project_id or NONE,
            record.api_key_id or NONE,
            record.model,
        )
        sums = rows.setdefault(key, [0, 0, 0, 0, 0])
        sums[0] += 1
        sums[1] += record.prompt_tokens
        sums[2] += record.cached_tokens
        sums[3] += record.completion_tokens
        sums[4] += record.cost_micro
    if not rows:
        return
    # The same order in every transaction: rows of one account are only ever
    # written with that account's row locked (charges.lock_accounts), but a
    # fixed order keeps two writers from deadlocking even without it.
    params = [
        {
            "account_id": account,
            "day": day,
            "project_id": project,
            "api_key_id": key,
            "model": model,
            **dict(zip(SUMS, sums, strict=True)),
        }
        for (account, project, key, model), sums in sorted(rows.items())
    ]
    connection.execute(_UPSERTS[connection.dialect.name], params)


@dataclass(frozen=True)
class RollupRow:
    """One day (UTC) of one group; a field not grouped by is None (as is a
    project or key grouped by where the requests had none)."""

    day: date
    project_id: str | None
    api_key_id: str | None
    model: str | None
    requests: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    cost_micro: int


GROUPS = {"project": UsageDaily.project_id, "key": UsageDaily.api_key_id, "model": UsageDaily.model}


def _sums() -> list[Any]:
    return [func.sum(getattr(UsageDaily, name)) for name in SUMS]


async def buckets(
    session: AsyncSession,
    account_id: str,
    since: date,
    until: date,
    group_by: Sequence[str] = (),
    project_id: str | None = None,
    api_key_id: str | None = None,
    models: Sequence[str] | None = None,
    project_ids: Sequence[str] | None = None,
    api_key_ids: Sequence[str] | None = None,
) -> list[RollupRow]:
    """An organisation's usage per UTC day in [since, until), and per project,
    key and/or model (``group_by`` names them: "project", "key", "model"),
    optionally only of one project, one key or some models (or some projects,
    some keys: the console's filters, in the query); ordered by day,
    then project, key and model (code points; no project or key first). Days
    without usage have no row."""
    unknown = [name for name in group_by if name not in GROUPS]
    if unknown:
        raise ValueError(f"cannot group usage by {', '.join(unknown)}")
    grouped = [name for name in GROUPS if name in group_by]  # one order, whatever was asked
    columns = [GROUPS[name] for name in grouped]
    if len(grouped) == len(GROUPS):  # by every column: each stored row is its own group
        query = select(UsageDaily.day, *columns, *(getattr(UsageDaily, name) for name in SUMS))
    else:
        query = select(UsageDaily.day, *columns, *_sums()).group_by(UsageDaily.day, *columns)
    query = query.where(UsageDaily.account_id == account_id).where(
        UsageDaily.day >= since, UsageDaily.day < until
    )
    if project_id is not None:
        query = query.where(UsageDaily.project_id == project_id)
    if api_key_id is not None:
        query = query.where(UsageDaily.api_key_id == api_key_id)
    if models is not None:
        query = query.where(UsageDaily.model.in_(list(models)))
    if project_ids is not None:
        query = query.where(UsageDaily.project_id.in_(list(project_ids)))
    if api_key_ids is not None:
        query = query.where(UsageDaily.api_key_id.in_(list(api_key_ids)))
    found = []
    for row in await session.execute(query):
        day, *rest = tuple[Any, ...](row)
        values: dict[str, str] = dict(zip(grouped, rest, strict=False))
        sums = [int(value or 0) for value in rest[len(grouped) :]]
        found.append(
            RollupRow(
                day,
                values.get("project") or None,
                values.get("key") or None,
                values.get("model"),
                *sums,
            )
        )
    # Sorted here, not by the database: PostgreSQL's collation would order
    # ids differently from SQLite's code points.
    found.sort(key=lambda r: (r.day, r.project_id or "", r.api_key_id or "", r.model or ""))
    return found


async def totals(
    session: AsyncSession,
    group: str,
    account_id: str | None = None,
    since: date | None = None,
    until: date | None = None,
    project_id: str | None = None,
) -> list[tuple[str, list[int]]]:
    """Sums over days [since, until) per account, project, key, model or day
    (a project or key that requests had none of is ""): usage.summarize's query."""
    column = {
        "account": UsageDaily.account_id,
        "project": UsageDaily.project_id,
        "key": UsageDaily.api_key_id,
        "model": UsageDaily.model,
        "day": UsageDaily.day,
    }[group]
    query = select(column, *_sums()).group_by(column)
    if account_id is not None:
        query = query.where(UsageDaily.account_id == account_id)
    if project_id is not None:
        query = query.where(UsageDaily.project_id == project_id)
    if since is not None:
        query = query.where(UsageDaily.day >= since)
    if until is not None:
        query = query.where(UsageDaily.day < until)
    return [
        (str(value), [int(total or 0) for total in sums])
        for value, *sums in await session.execute(query)
    ]


async def cost_since(session: AsyncSession, project_id: str, since: date) -> int:
    """Micro-yuan a project's requests cost from the UTC day ``since`` on."""
    total = await session.scalar(
        select(func.coalesce(func.sum(UsageDaily.cost_micro), 0)).where(
            UsageDaily.project_id == project_id, UsageDaily.day >= since
        )
    )
    return int(total or 0)
