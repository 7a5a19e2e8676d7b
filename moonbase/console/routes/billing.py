"""Billing: the organisation's ledger, newest first, by whole UTC days: top-ups,
vouchers, refunds and adjustments as they were entered, and each day's charges
summed (from the daily rollups, never one row per request). The organisation
service decides who reads it (owner, admin, viewer; a member is refused)."""

from __future__ import annotations

from datetime import date

from starlette.responses import Response

from moonbase.api.deps import BillingDep, OrganizationDep
from moonbase.billing.money import to_yuan
from moonbase.console.pages import MemberPage, console_router, nav
from moonbase.errors import BadRequestError

router = console_router()
nav("/console/billing", "nav.billing", order=50)
KINDS = ("topup", "voucher", "refund", "adjustment", "charges")


@router.get("/billing")
async def billing(page: MemberPage, service: OrganizationDep, money: BillingDep) -> Response:
    p = page.signed_in
    text = page.request.query_params.get("before", "")
    try:
        before = date.fromisoformat(text) if text else None
    except ValueError:
        raise BadRequestError(f"{text[:40]!r} is not a date (YYYY-MM-DD)", param="before") from None
    found = await service.ledger(p, before)
    balances = await money.balances(p.account_id)
    return page.render(
        "billing.html",
        rows=found.rows,
        next_before=found.next_before,
        before=before,
        kinds=KINDS,
        yuan=to_yuan,
        cash=to_yuan(balances.cash_micro),
        voucher=to_yuan(balances.voucher_micro),
    )
