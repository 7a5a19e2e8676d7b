"""The overview: balances, spend this month, requests today, and the last 30
days by model, read from the daily rollups (``usage_daily``) through the
management API's own usage service, so a member sees only their projects."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from starlette.responses import Response

from moonbase.api.deps import BillingDep, OrganizationDep
from moonbase.billing.money import to_yuan
from moonbase.console.pages import MemberPage, console_router, nav
from moonbase.organization.usage import UsageQuery

router = console_router()
nav("/console", "nav.overview", order=10)
DAYS = 30
DAY = timedelta(days=1)


@router.get("")
async def overview(page: MemberPage, service: OrganizationDep, billing: BillingDep) -> Response:
    p = page.signed_in
    today = datetime.now(UTC).date()
    first = today - (DAYS - 1) * DAY
    month = today.replace(day=1)
    balances = await billing.balances(p.account_id)
    since = min(first, month)
    rows = await service.usage_rows(
        p, UsageQuery(since, today + DAY, (), (), (), (), (today + DAY - since).days), ("model",)
    )  # one query: the database sums by day and model, whatever the number of records

    days = [first + i * DAY for i in range(DAYS)]
    by_model: dict[str, list[int]] = defaultdict(lambda: [0] * DAYS)
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    spent_month = 0.0
    for row in rows:
        model = row.model or "?"
        if row.day >= month:
            spent_month += to_yuan(row.cost_micro)
        if row.day < first:
            continue
        by_model[model][(row.day - first).days] += row.requests
        total = totals[model]
        total["requests"] += row.requests
        total["input"] += row.prompt_tokens
        total["cached"] += row.cached_tokens
        total["output"] += row.completion_tokens
        total["cost"] += to_yuan(row.cost_micro)
    requests_today = sum(values[-1] for values in by_model.values())
    t = page.t
    chart = {
        "labels": [t.short_date(day) for day in days],
        "series": [{"name": name, "values": by_model[name]} for name in sorted(by_model)],
        "x": t("overview.chart_day"),
        "y": t("overview.chart_axis"),
    }
    return page.render(
        "overview.html",
        cash=to_yuan(balances.cash_micro),
        voucher=to_yuan(balances.voucher_micro),
        available=to_yuan(balances.available_micro),
        spent_month=spent_month,
        requests_today=requests_today,
        chart=chart,
        rows=sorted(totals.items(), key=lambda item: -item[1]["requests"]),
        first=first,
        today=today,
    )
