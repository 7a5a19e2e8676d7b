"""The audit log, for the platform operator: every change to keys, money,
limits, people and projects, newest first, a page at a time, filtered by
organisation, actor and action. Read through ``AdminService.audit_page``,
which refuses anyone but the operator."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.responses import Response

from moonbase.api.deps import AdminDep
from moonbase.console import forms
from moonbase.console.pages import MemberPage, console_router, nav

router = console_router()
nav("/console/operator/audit", "nav.audit", order=130, operator=True)
PAGE = 50


@router.get("/operator/audit")
async def audit_log(page: MemberPage, admin: AdminDep) -> Response:
    query = page.request.query_params
    filters = {name: query.get(name, "").strip()[:100] for name in ("org", "actor", "action")}
    before_text = query.get("before", "")
    before = forms.number(before_text, "before", 1, 2**62) if before_text else None
    accounts = await admin.organisations(page.signed_in)
    names = {account.id: account.name for account in accounts}
    events = await admin.audit_page(
        page.signed_in,
        filters["org"] or None,
        filters["actor"] or None,
        filters["action"] or None,
        PAGE + 1,
        before,
    )
    more = len(events) > PAGE
    events = events[:PAGE]
    older = ""
    if more:
        older = "/console/operator/audit?" + urlencode(
            {**{k: v for k, v in filters.items() if v}, "before": events[-1].id}
        )
    return page.render(
        "operator_audit.html", events=events, filters=filters, accounts=accounts, names=names,
        older=older, first_page=before is None,
    )  # fmt: skip
