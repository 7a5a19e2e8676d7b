"""Organisations, for the platform operator: every organisation with its
balances, tier and limits; create one, top it up, grant a voucher, pin a tier
or single limits. Each action is ``AdminService``'s, which refuses anyone but
the operator (a hidden link is not the check)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from moonbase.admin import AdminService
from moonbase.api.deps import AdminDep
from moonbase.billing.money import to_yuan
from moonbase.console import forms
from moonbase.console.pages import MemberPage, Page, console_router, nav
from moonbase.errors import BadRequestError, MoonbaseError

router = console_router()
nav("/console/operator/organizations", "nav.orgs", order=110, operator=True)
BASE = "/console/operator/organizations"
LIMITS = ("concurrency", "rpm", "tpm", "tpd")
DONE = ("created", "topup", "voucher", "limits")


def _done(page: Page) -> str:
    done = page.request.query_params.get("done", "")
    return page.t(f"orgs.done_{done}") if done in DONE else ""


async def _listing(page: Page, admin: AdminService, status: int = 200, **extra: Any) -> Response:
    accounts = await admin.organisations(page.signed_in)
    return page.render(
        "operator_orgs.html", status=status, accounts=accounts, to_yuan=to_yuan,
        **{"message": "", "form": {}, **extra},
    )  # fmt: skip


@router.get("/operator/organizations")
async def organisations(page: MemberPage, admin: AdminDep) -> Response:
    return await _listing(page, admin)


@router.post("/operator/organizations")
async def create(page: MemberPage, admin: AdminDep) -> Response:
    name = await page.field("name", 200)
    try:
        created = await admin.create_organisation(page.signed_in, name)
    except MoonbaseError as exc:
        return await _listing(
            page, admin, exc.status_code, message=page.error_text(exc), form={"name": name}
        )
    return page.redirect(f"{BASE}/{created.id}?done=created")


async def _detail(
    page: Page, admin: AdminService, account_id: str, status: int = 200, **extra: Any
) -> Response:
    account = await admin.organisation(page.signed_in, account_id)
    return page.render(
        "operator_org.html", status=status, account=account, to_yuan=to_yuan, limit_names=LIMITS,
        done=_done(page), **{"message": "", "form": {}, **extra},
    )  # fmt: skip


@router.get("/operator/organizations/{account_id}")
async def organisation(page: MemberPage, admin: AdminDep, account_id: str) -> Response:
    return await _detail(page, admin, account_id)


@router.post("/operator/organizations/{account_id}/credit")
async def credit(page: MemberPage, admin: AdminDep, account_id: str) -> Response:
    form = {name: await page.field(name, 200) for name in ("kind", "amount", "reason")}
    try:
        amount = forms.yuan(form["amount"], "amount")
        if amount is None:
            raise BadRequestError("enter an amount in yuan", param="amount")
        await admin.credit_organisation(
            page.signed_in, account_id, form["kind"], amount, form["reason"]
        )
    except MoonbaseError as exc:
        return await _detail(
            page, admin, account_id, exc.status_code, message=page.error_text(exc), form=form
        )
    return page.redirect(f"{BASE}/{account_id}?done={form['kind']}")


@router.post("/operator/organizations/{account_id}/limits")
async def limits(page: MemberPage, admin: AdminDep, account_id: str) -> Response:
    form = {name: await page.field(name, 20) for name in ("tier", *LIMITS)}
    try:
        tier = forms.number(form["tier"], "tier", 0, 5) if form["tier"] else None
        values = {
            name: forms.number(form[name].replace(",", ""), name, 1, 10**12) if form[name] else None
            for name in LIMITS
        }
        await admin.set_organisation_limits(page.signed_in, account_id, tier, **values)
    except MoonbaseError as exc:
        return await _detail(
            page, admin, account_id, exc.status_code, message=page.error_text(exc), form=form
        )
    return page.redirect(f"{BASE}/{account_id}?done=limits")
