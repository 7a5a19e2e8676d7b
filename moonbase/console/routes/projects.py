"""Projects: the list (budgets and what they have spent), creating one, and a
project's page: budgets, people, model allowlist. Every change goes through
the management service, which checks the visitor's role."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from starlette.responses import Response

from moonbase.api.deps import BillingDep, OrganizationDep
from moonbase.auth.roles import OrgRole, Principal, ProjectRole
from moonbase.billing.money import to_yuan
from moonbase.billing.service import BillingService
from moonbase.catalog import SPECS_BY_ID
from moonbase.console import forms
from moonbase.console.pages import MemberPage, Page, console_router, nav
from moonbase.errors import BadRequestError, MoonbaseError
from moonbase.organization.service import OrganizationService
from moonbase.schemas import organization as wire

router = console_router()
nav("/console/projects", "nav.projects", order=20)


def manages(p: Principal, project_id: str) -> bool:
    return p.manages_org or (
        p.role is OrgRole.MEMBER and p.projects.get(project_id) is ProjectRole.OWNER
    )


async def _spend(billing: BillingService, project_id: str) -> dict[str, float]:
    status = await billing.budgets.status(project_id)
    return {"today": to_yuan(status.spent_day), "month": to_yuan(status.spent_month)}


async def _list(
    page: Page, service: OrganizationService, billing: BillingService, status: int = 200,
    **extra: Any,
) -> Response:  # fmt: skip
    projects = await service.projects(page.signed_in)
    spend = {x.id: await _spend(billing, x.id) for x in projects}
    return page.render("projects.html", status=status, projects=projects, spend=spend,
                       **{"message": "", "form": {}, **extra})  # fmt: skip


@router.get("/projects")
async def projects(page: MemberPage, service: OrganizationDep, billing: BillingDep) -> Response:
    return await _list(page, service, billing)


@router.post("/projects")
async def create_project(
    page: MemberPage, service: OrganizationDep, billing: BillingDep
) -> Response:
    form = {name: await page.field(name) for name in ("name", "daily", "monthly")}
    try:
        body = forms.wire(
            wire.ProjectCreate,
            name=form["name"],
            daily_budget=forms.yuan(form["daily"], "daily_budget"),
            monthly_budget=forms.yuan(form["monthly"], "monthly_budget"),
        )
        created = await service.create_project(page.signed_in, body)
    except MoonbaseError as exc:
        return await _list(page, service, billing, exc.status_code,
                           message=page.error_text(exc), form=form)  # fmt: skip
    return page.redirect(f"/console/projects/{created.id}?done=created")


async def _detail(
    page: Page, service: OrganizationService, billing: BillingService, project_id: str,
    status: int = 200, message: str = "",
) -> Response:  # fmt: skip
    p = page.signed_in
    project = await service.get_project(p, project_id)
    members = await service.project_users(p, project_id)
    org_people = await service.users(p) if manages(p, project_id) else []
    inside = {m.id for m in members}
    done = page.request.query_params.get("done", "")
    return page.render(
        "project.html", status=status, project=project, members=members,
        candidates=[u for u in org_people if u.id not in inside],
        allowed=await service.project_models(p, project_id), models=sorted(SPECS_BY_ID),
        spend=await _spend(billing, project_id), manages=manages(p, project_id),
        message=message, done=f"project.done_{done}" if done.isalpha() and len(done) < 20 else "",
    )  # fmt: skip


@router.get("/projects/{project_id}")
async def project(
    page: MemberPage, service: OrganizationDep, billing: BillingDep, project_id: str
) -> Response:
    return await _detail(page, service, billing, project_id)


async def _change(
    page: Page, service: OrganizationService, billing: BillingService, project_id: str,
    done: str, change: Awaitable[object],
) -> Response:  # fmt: skip
    """Run a change; on success see the project again, else its page with what to fix."""
    try:
        await change
    except MoonbaseError as exc:
        return await _detail(page, service, billing, project_id, exc.status_code,
                             page.error_text(exc))  # fmt: skip
    return page.redirect(f"/console/projects/{project_id}?done={done}")


@router.post("/projects/{project_id}/budgets")
async def set_budgets(
    page: MemberPage, service: OrganizationDep, billing: BillingDep, project_id: str
) -> Response:
    async def change() -> None:
        body = forms.wire(
            wire.ProjectUpdate,
            daily_budget=forms.yuan(await page.field("daily"), "daily_budget"),
            monthly_budget=forms.yuan(await page.field("monthly"), "monthly_budget"),
        )
        await service.update_project(page.signed_in, project_id, body)

    return await _change(page, service, billing, project_id, "budgets", change())


@router.post("/projects/{project_id}/members")
async def add_member(
    page: MemberPage, service: OrganizationDep, billing: BillingDep, project_id: str
) -> Response:
    async def change() -> None:
        body = forms.wire(
            wire.ProjectUserAdd,
            user_id=await page.field("user_id", 40),
            role=await page.field("role", 16),
        )
        await service.add_project_user(page.signed_in, project_id, body)

    return await _change(page, service, billing, project_id, "member", change())


@router.post("/projects/{project_id}/members/{user_id}/remove")
async def remove_member(
    page: MemberPage, service: OrganizationDep, billing: BillingDep, project_id: str, user_id: str
) -> Response:
    change = service.remove_project_user(page.signed_in, project_id, user_id)
    return await _change(page, service, billing, project_id, "removed", change)


@router.post("/projects/{project_id}/models")
async def set_models(
    page: MemberPage, service: OrganizationDep, billing: BillingDep, project_id: str
) -> Response:
    async def change() -> None:
        chosen = await page.fields("models", 64)
        if await page.field("mode", 10) == "any":
            chosen_or_any = None
        elif not chosen:
            raise BadRequestError("choose at least one model", param="allowed_models")
        else:
            chosen_or_any = chosen
        await service.set_project_models(page.signed_in, project_id, chosen_or_any)

    return await _change(page, service, billing, project_id, "models", change())
