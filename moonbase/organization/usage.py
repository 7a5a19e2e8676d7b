"""Usage and costs by day for the management API, read from the daily
rollups (``store/repositories/usage_rollups.py``), in the shape of OpenAI's
``/v1/organization/usage/completions`` and ``/v1/organization/costs``: a page
of one-day buckets, each with its results grouped as asked.

A ``member`` sees the projects they belong to; everyone else in the
organisation sees all of its projects."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from moonbase.auth.roles import Principal
from moonbase.billing.money import to_yuan
from moonbase.bounds import whole_number
from moonbase.errors import BadRequestError
from moonbase.store.database import Database
from moonbase.store.repositories import usage_rollups

DAY = timedelta(days=1)
# The last day a range may name: a page of days after it must still be a date.
LAST_DAY = date(9000, 12, 31)
# OpenAI's group_by names and the rollup's.
USAGE_GROUPS = {"project_id": "project", "api_key_id": "key", "model": "model"}
COST_GROUPS = {"project_id": "project", "line_item": "model"}  # a line item is a model


@dataclass(frozen=True)
class UsageQuery:
    """A page of days: ``start`` inclusive, ``end`` exclusive, at most ``limit`` buckets."""

    start: date
    end: date
    group_by: tuple[str, ...]
    project_ids: tuple[str, ...]
    api_key_ids: tuple[str, ...]
    models: tuple[str, ...]
    limit: int


def _day(unix: int, param: str) -> date:
    if not 0 <= unix < 2**37:
        raise BadRequestError(f"{param} must be unix seconds", param=param)
    return datetime.fromtimestamp(unix, UTC).date()


def parse_query(params: dict[str, list[str]], groups: dict[str, str], max_limit: int) -> UsageQuery:
    """The query string as OpenAI's clients send it (``group_by=model`` or
    ``group_by[]=model``, repeated); a 400 names what is wrong."""

    def many(name: str) -> tuple[str, ...]:
        values = [*params.get(name, []), *params.get(f"{name}[]", [])]
        if len(values) > 100 or any(len(v) > 100 for v in values):
            raise BadRequestError(f"{name}: at most 100 values of 100 characters", param=name)
        if "" in values:  # it would match the usage of no project, no key
            raise BadRequestError(f"{name}: an empty value names nothing", param=name)
        return tuple(values)

    def one(name: str) -> str | None:
        values = params.get(name, [])
        return values[-1] if values else None

    def integer(name: str) -> int | None:
        text = one(name)
        if text is None:
            return None
        number = whole_number(text, max_digits=12)
        if number is None:
            raise BadRequestError(f"{name} must be a whole number", param=name)
        return number

    start_unix = integer("start_time")
    if start_unix is None:
        raise BadRequestError("start_time (unix seconds) is required", param="start_time")
    width = one("bucket_width") or "1d"
    if width != "1d":
        raise BadRequestError("bucket_width: only 1d (usage is kept by day)", param="bucket_width")
    start = _day(start_unix, "start_time")
    page = one("page")
    if page is not None:  # the next page starts on the day it names
        try:
            start = date.fromisoformat(page)
        except ValueError:
            raise BadRequestError("page: not a page from this API", param="page") from None
        if start > LAST_DAY:
            raise BadRequestError("page: not a page from this API", param="page")
    end_unix = integer("end_time")
    today_end = datetime.now(UTC).date() + DAY  # no end_time: up to now
    end = _day(end_unix + 86399, "end_time") if end_unix is not None else today_end
    end = max(end, start)
    limit = integer("limit") or 7
    if not 1 <= limit <= max_limit:
        raise BadRequestError(f"limit must be between 1 and {max_limit}", param="limit")
    group_by = many("group_by")
    unknown = [g for g in group_by if g not in groups]
    if unknown:
        raise BadRequestError(
            f"group_by: {unknown[0]!r} is not one of {', '.join(groups)}", param="group_by"
        )
    return UsageQuery(
        start, end, tuple(dict.fromkeys(group_by)), many("project_ids"), many("api_key_ids"),
        many("models"), limit,
    )  # fmt: skip


async def _rows(
    db: Database, p: Principal, q: UsageQuery, groups: dict[str, str]
) -> tuple[list[usage_rollups.RollupRow], date, bool]:
    """The rollup rows of this page's days, grouped as asked, of what the
    caller may see and the query filters (the database filters and sums)."""
    last = min(q.end, q.start + q.limit * DAY)
    found = await rows(db, p, replace(q, end=last), sorted({groups[g] for g in q.group_by}))
    return found, last, last < q.end


RollupRow = usage_rollups.RollupRow


async def rows(
    db: Database, p: Principal, q: UsageQuery, group_by: Sequence[str] = ("project", "key", "model")
) -> list[RollupRow]:
    """Rollup rows of days [q.start, q.end) by day and ``group_by`` (the
    rollup's names: "project", "key", "model"), of what ``p`` sees and ``q``
    filters, every filter in the query (the console's usage page, its CSV,
    the overview): the database sums, whatever the number of rows."""
    project_ids: list[str] | None = list(q.project_ids) or None
    if not p.sees_all_projects:  # a member: their projects (no project is no one's)
        project_ids = [x for x in (project_ids or p.projects) if x in p.projects]
        if not project_ids:
            return []
    async with db.read() as session:
        return await usage_rollups.buckets(
            session, p.account_id, q.start, q.end, group_by, models=list(q.models) or None,
            project_ids=project_ids, api_key_ids=list(q.api_key_ids) or None,
        )  # fmt: skip


def _page(days: Sequence[date], results: dict[date, list[dict[str, Any]]], more: bool,
          last: date) -> dict[str, Any]:  # fmt: skip
    data = [
        {
            "object": "bucket",
            "start_time": int(datetime.combine(day, datetime.min.time(), UTC).timestamp()),
            "end_time": int(datetime.combine(day + DAY, datetime.min.time(), UTC).timestamp()),
            "results": results.get(day, []),
        }
        for day in days
    ]
    return {"object": "page", "data": data, "has_more": more,
            "next_page": last.isoformat() if more else None}  # fmt: skip


def _days(start: date, last: date) -> list[date]:
    return [start + i * DAY for i in range((last - start).days)]


async def completions(db: Database, p: Principal, q: UsageQuery) -> dict[str, Any]:
    rows, last, more = await _rows(db, p, q, USAGE_GROUPS)
    sums: dict[tuple[date, tuple[str | None, ...]], list[int]] = defaultdict(lambda: [0] * 4)
    for row in rows:
        key = tuple(_group_value(row, USAGE_GROUPS[g]) for g in q.group_by)
        total = sums[(row.day, key)]
        for i, n in enumerate((row.prompt_tokens, row.completion_tokens, row.cached_tokens,
                               row.requests)):  # fmt: skip
            total[i] += n
    results: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for (day, key), (inp, out, cached, requests) in sorted(sums.items(), key=_order):
        named = dict(zip(q.group_by, key, strict=True))
        results[day].append({
            "object": "organization.usage.completions.result",
            "input_tokens": inp, "output_tokens": out, "input_cached_tokens": cached,
            "input_audio_tokens": 0, "output_audio_tokens": 0, "num_model_requests": requests,
            "project_id": named.get("project_id"), "user_id": None,
            "api_key_id": named.get("api_key_id"), "model": named.get("model"), "batch": None,
        })  # fmt: skip
    return _page(_days(q.start, last), results, more, last)


async def costs(db: Database, p: Principal, q: UsageQuery) -> dict[str, Any]:
    rows, last, more = await _rows(db, p, q, COST_GROUPS)
    sums: dict[tuple[date, tuple[str | None, ...]], int] = defaultdict(int)
    for row in rows:
        key = tuple(_group_value(row, COST_GROUPS[g]) for g in q.group_by)
        sums[(row.day, key)] += row.cost_micro
    results: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for (day, key), micro in sorted(sums.items(), key=_order):
        named = dict(zip(q.group_by, key, strict=True))
        results[day].append({
            "object": "organization.costs.result",
            "amount": {"value": to_yuan(micro), "currency": "cny"},
            "line_item": named.get("line_item"), "project_id": named.get("project_id"),
        })  # fmt: skip
    return _page(_days(q.start, last), results, more, last)


def _group_value(row: usage_rollups.RollupRow, group: str) -> str | None:
    return {"project": row.project_id, "key": row.api_key_id, "model": row.model}[group]


def _order(item: tuple[tuple[date, tuple[str | None, ...]], Any]) -> tuple[date, tuple[str, ...]]:
    (day, key), _ = item
    return day, tuple(v or "" for v in key)
