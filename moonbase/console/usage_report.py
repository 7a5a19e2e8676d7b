"""The usage page's filters and figures: what the query string asks for
(a range of UTC days, a project, a key, a model, how the table groups), and
the rollup rows summed for the chart, the table and the CSV export.

The CSV is spreadsheet-safe: a cell that starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return (a project or key name someone typed) is
prefixed with ``'``, so a spreadsheet shows it as text instead of running it
as a formula."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from moonbase.billing.money import MICRO_PER_YUAN
from moonbase.bounds import whole_number
from moonbase.errors import BadRequestError
from moonbase.organization.usage import LAST_DAY, RollupRow, UsageQuery

DAY = timedelta(days=1)
PRESETS = (1, 7, 30, 90)
MAX_DAYS = 366
GROUPS = ("model", "project", "key", "day")
MAX_SERIES = 8
OTHER = "\x00other"  # the series of every group past the busiest
CSV_COLUMNS = ("date", "project_id", "project", "api_key_id", "api_key", "model", "requests",
               "input_tokens", "cached_tokens", "output_tokens", "cost_cny")  # fmt: skip


@dataclass(frozen=True)
class Filters:
    first: date  # inclusive
    last: date  # inclusive
    days: int | None  # the preset chosen, None for from/to
    project: str
    key: str
    model: str
    group: str

    def query(self) -> UsageQuery:
        span = (self.last - self.first).days + 1
        return UsageQuery(
            self.first,
            self.last + DAY,
            (),
            (self.project,) if self.project else (),
            (self.key,) if self.key else (),
            (self.model,) if self.model else (),
            span,
        )

    def as_params(self) -> dict[str, str]:
        """The same filters as a query string (the CSV link)."""
        chosen = {"project": self.project, "key": self.key, "model": self.model}
        if self.days is not None:
            span = {"days": str(self.days)}
        else:
            span = {"from": self.first.isoformat(), "to": self.last.isoformat()}
        return {**span, **{k: v for k, v in chosen.items() if v}, "group": self.group}


def _date(text: str, param: str) -> date:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise BadRequestError(f"{text[:40]!r} is not a date (YYYY-MM-DD)", param=param) from None
    if day > LAST_DAY:  # the day after must exist too
        raise BadRequestError(f"{text[:40]!r}: a date up to {LAST_DAY}", param=param)
    return day


def filters(params: Mapping[str, str], today: date | None = None) -> Filters:
    """The query string's filters; a 400 names the field that is wrong."""
    today = today or datetime.now(UTC).date()
    start, end = params.get("from", "").strip(), params.get("to", "").strip()
    days: int | None = None
    if start or end:
        first = _date(start, "from") if start else today - 29 * DAY
        last = _date(end, "to") if end else today
        if last < first:
            raise BadRequestError("the range ends before it starts", param="to")
        if (last - first).days + 1 > MAX_DAYS:
            raise BadRequestError(f"a range is at most {MAX_DAYS} days", param="from")
    else:
        days = whole_number(params.get("days", "30"), max_digits=3) or 30
        days = days if days in PRESETS else 30
        first, last = today - (days - 1) * DAY, today
    group = params.get("group", "model")
    return Filters(
        first, last, days, params.get("project", "")[:100], params.get("key", "")[:100],
        params.get("model", "")[:100], group if group in GROUPS else "model",
    )  # fmt: skip


@dataclass
class Totals:
    requests: int = 0
    input: int = 0
    cached: int = 0
    output: int = 0
    cost_micro: int = 0

    def add(self, row: RollupRow) -> None:
        self.requests += row.requests
        self.input += row.prompt_tokens
        self.cached += row.cached_tokens
        self.output += row.completion_tokens
        self.cost_micro += row.cost_micro

    @property
    def cost(self) -> Decimal:
        return Decimal(self.cost_micro) / MICRO_PER_YUAN


def group_of(row: RollupRow, group: str) -> str:
    if group == "day":
        return row.day.isoformat()
    return {"model": row.model, "project": row.project_id, "key": row.api_key_id}[group] or ""


def table(rows: Iterable[RollupRow], group: str) -> tuple[list[tuple[str, Totals]], Totals]:
    """Totals per group value (most requests first; days newest first), and overall."""
    sums: dict[str, Totals] = defaultdict(Totals)
    total = Totals()
    for row in rows:
        sums[group_of(row, group)].add(row)
        total.add(row)
    if group == "day":
        return sorted(sums.items(), reverse=True), total
    return sorted(sums.items(), key=lambda item: (-item[1].requests, item[0])), total


def chart_series(rows: Iterable[RollupRow], f: Filters, group: str) -> list[tuple[str, list[int]]]:
    """Requests per day, one series per group value (the busiest MAX_SERIES,
    the rest summed as ""); grouping by day: one series."""
    span = (f.last - f.first).days + 1
    per: dict[str, list[int]] = defaultdict(lambda: [0] * span)
    for row in rows:
        name = "" if group == "day" else group_of(row, group)
        per[name][(row.day - f.first).days] += row.requests
    ranked = sorted(per.items(), key=lambda item: (-sum(item[1]), item[0]))
    kept, rest = ranked[:MAX_SERIES], ranked[MAX_SERIES:]
    if rest:
        kept.append((OTHER, [sum(day) for day in zip(*(v for _, v in rest), strict=True)]))
    return kept


def safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


def yuan_text(micro: int) -> str:
    """Micro-yuan as yuan with six decimals, exactly (no float, no Decimal per cell)."""
    whole, part = divmod(abs(micro), MICRO_PER_YUAN)
    return f"{'-' if micro < 0 else ''}{whole}.{part:06d}"


def to_csv(rows: Iterable[RollupRow], projects: Mapping[str, str], keys: Mapping[str, str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    # Only the text cells can hold what a person typed; numbers go out as they are.
    writer.writerows(
        (
            row.day.isoformat(),
            safe_cell(row.project_id),
            safe_cell(projects.get(row.project_id or "", "")),
            safe_cell(row.api_key_id),
            safe_cell(keys.get(row.api_key_id or "", "")),
            safe_cell(row.model),
            row.requests,
            row.prompt_tokens,
            row.cached_tokens,
            row.completion_tokens,
            yuan_text(row.cost_micro),
        )
        for row in rows
    )
    return out.getvalue()
