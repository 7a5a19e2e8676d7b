"""Usage: requests, input / cached / output tokens and cost over a range of
UTC days, filtered by project, key and model, as a chart, a table and a CSV
download with the same filters. Read from the daily rollups through the
organisation service, which keeps a member to their own projects."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

from starlette.responses import Response

from moonbase.api.deps import OrganizationDep
from moonbase.catalog import SPECS_BY_ID
from moonbase.console import usage_report as report
from moonbase.console.pages import MemberPage, Page, console_router, nav
from moonbase.errors import NotFoundError
from moonbase.organization.service import OrganizationService
from moonbase.organization.usage import RollupRow

router = console_router()
nav("/console/usage", "nav.usage", order=40)


async def _read(
    page: Page, service: OrganizationService, group_by: tuple[str, ...] | None
) -> tuple[report.Filters, list[RollupRow], dict[str, str], dict[str, str], list[object]]:
    """The filters, the rows, project and key names, and the visible projects.
    A project or key the visitor cannot see is a 404 (the service decides)."""
    p = page.signed_in
    f = report.filters(page.request.query_params)
    projects = await service.projects(p)
    by_project = await service.keys_by_project(p, f.project or None)  # 404: not seen
    keys = {key.id: key.name for found in by_project.values() for key in found}
    if f.key and f.key not in keys:
        raise NotFoundError(f"no API key {f.key!r} in what you see", param="key_id")
    if group_by is None:  # the table's grouping only: the database sums the rest
        group_by = () if f.group == "day" else (f.group,)
    rows = await service.usage_rows(p, f.query(), group_by)
    return f, rows, {x.id: x.name for x in projects}, keys, list(projects)


@router.get("/usage")
async def usage(page: MemberPage, service: OrganizationDep) -> Response:
    f, rows, projects, keys, project_list = await _read(page, service, None)
    t = page.t
    names = {"project": projects, "key": keys}.get(f.group, {})

    def label(value: str) -> str:
        if value == report.OTHER:
            return t("usage.other")
        if f.group == "day":
            return t.date(date.fromisoformat(value))
        none = t("usage.no_key") if f.group == "key" else t("usage.no_project")
        return names.get(value, value) or none

    lines, total = report.table(rows, f.group)
    span = (f.last - f.first).days + 1
    chart = {
        "labels": [t.short_date(f.first + i * report.DAY) for i in range(span)],
        "series": [{"name": label(name) if name else t("usage.requests"), "values": values}
                   for name, values in report.chart_series(rows, f, f.group)],
        "x": t("overview.chart_day"),
        "y": t("overview.chart_axis"),
    }  # fmt: skip
    models = sorted(set(SPECS_BY_ID) | {row.model for row in rows if row.model} | {f.model} - {""})
    return page.render(
        "usage.html", f=f, lines=[(label(v), v, n) for v, n in lines], total=total, chart=chart,
        projects=project_list, keys=keys, models=models, presets=report.PRESETS,
        groups=report.GROUPS, csv_url="/console/usage.csv?" + urlencode(f.as_params()),
    )  # fmt: skip


@router.get("/usage.csv")
async def usage_csv(page: MemberPage, service: OrganizationDep) -> Response:
    f, rows, projects, keys, _ = await _read(page, service, ("project", "key", "model"))
    name = f"moonbase-usage-{f.first.isoformat()}-{f.last.isoformat()}.csv"
    return Response(
        report.to_csv(rows, projects, keys).encode("utf-8-sig"),  # the BOM: Excel reads UTF-8
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )
