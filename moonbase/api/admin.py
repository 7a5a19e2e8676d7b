"""The admin API: accounts, keys, money, limits, projects, usage. Its own bearer token."""

from __future__ import annotations

import hmac
from dataclasses import asdict
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from moonbase import admin
from moonbase.api.bodies import json_body
from moonbase.api.deps import AdminDep
from moonbase.auth.actor import Actor
from moonbase.auth.project_policy import ProjectLimits
from moonbase.billing.money import to_yuan
from moonbase.errors import AuthenticationError, NotFoundError
from moonbase.schemas.admin import (
    AccountCreate,
    AccountOut,
    AuditEventOut,
    Budgets,
    Credit,
    KeyCreate,
    KeyListingOut,
    KeyOut,
    KeyRestrict,
    KeyRotate,
    LimitsUpdate,
    ProjectCreate,
    ProjectLimitsUpdate,
    ProjectModels,
    ProjectOut,
    UsageReport,
    UsageRowOut,
)
from moonbase.store.repositories.usage import UsageRow


def require_admin(request: Request, operator: AdminDep) -> None:
    expected = operator.token
    if not expected:
        raise NotFoundError("Not found: the admin API is off (set MOONBASE_ADMIN_TOKEN)")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    # Bearer only: any other scheme (Basic, ...) is not this token, whatever it carries.
    bearer = token.strip() if scheme.lower() == "bearer" else ""
    if not hmac.compare_digest(bearer.encode(), expected.encode()):
        raise AuthenticationError("Invalid admin token", code="invalid_admin_token")


router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)])


def get_actor(request: Request) -> Actor:
    """Who makes a change through the admin API: the holder of its token, from here."""
    return Actor("admin-api", request.client.host if request.client else None)


ActorDep = Annotated[Actor, Depends(get_actor)]


def account_out(view: admin.AccountView) -> AccountOut:
    return AccountOut(
        id=view.id,
        name=view.name,
        cash_balance=to_yuan(view.cash_micro),
        voucher_balance=to_yuan(view.voucher_micro),
        topped_up=to_yuan(view.topped_up_micro),
        tier=view.tier,
        limits=asdict(view.limits),
    )


@router.post("/accounts", response_model=AccountOut, status_code=201)
async def create_account(
    body: Annotated[AccountCreate, Depends(json_body(AccountCreate))],
    operator: AdminDep,
    actor: ActorDep,
) -> AccountOut:
    return account_out(await operator.create_account(body.name, actor))


@router.get("/accounts", response_model=list[AccountOut])
async def list_accounts(operator: AdminDep) -> list[AccountOut]:
    return [account_out(view) for view in await operator.list_accounts()]


@router.post("/accounts/{account_id}/keys", response_model=KeyOut, status_code=201)
async def create_key(
    account_id: str,
    body: Annotated[KeyCreate, Depends(json_body(KeyCreate))],
    operator: AdminDep,
    actor: ActorDep,
) -> KeyOut:
    issued = await operator.create_key(
        account_id, body.name, restrictions(body), actor, body.project
    )
    return KeyOut(id=issued.id, key=issued.secret)


def restrictions(body: KeyRestrict) -> admin.KeyRestrictions:
    return admin.KeyRestrictions(body.expires_at, body.allowed_ips, body.allowed_models)


@router.get("/keys", response_model=list[KeyListingOut])
async def list_keys(operator: AdminDep) -> list[KeyListingOut]:
    return [KeyListingOut(**asdict(key)) for key in await operator.list_keys()]


@router.delete("/keys/{key_id}")
async def revoke_key(key_id: str, operator: AdminDep, actor: ActorDep) -> dict[str, object]:
    await operator.revoke_key(key_id, actor)
    return {"id": key_id, "revoked": True}


@router.put("/keys/{key_id}/restrictions")
async def restrict_key(
    key_id: str,
    body: Annotated[KeyRestrict, Depends(json_body(KeyRestrict))],
    operator: AdminDep,
    actor: ActorDep,
) -> dict[str, object]:
    await operator.restrict_key(key_id, restrictions(body), actor)
    return {"id": key_id, "restricted": True}


@router.post("/keys/{key_id}/disable")
async def disable_key(key_id: str, operator: AdminDep, actor: ActorDep) -> dict[str, object]:
    await operator.set_key_disabled(key_id, True, actor)
    return {"id": key_id, "disabled": True}


@router.post("/keys/{key_id}/enable")
async def enable_key(key_id: str, operator: AdminDep, actor: ActorDep) -> dict[str, object]:
    await operator.set_key_disabled(key_id, False, actor)
    return {"id": key_id, "disabled": False}


@router.post("/keys/{key_id}/rotate", response_model=KeyOut)
async def rotate_key(
    key_id: str,
    body: Annotated[KeyRotate, Depends(json_body(KeyRotate))],
    operator: AdminDep,
    actor: ActorDep,
) -> KeyOut:
    issued = await operator.rotate_key(key_id, body.grace_s, actor)
    return KeyOut(id=issued.id, key=issued.secret)


@router.post("/accounts/{account_id}/topup", response_model=AccountOut)
async def top_up(
    account_id: str,
    body: Annotated[Credit, Depends(json_body(Credit))],
    operator: AdminDep,
    actor: ActorDep,
) -> AccountOut:
    view = await operator.credit(
        account_id, "topup", body.amount, body.reason, body.reference, actor
    )
    return account_out(view)


@router.post("/accounts/{account_id}/vouchers", response_model=AccountOut)
async def grant_voucher(
    account_id: str,
    body: Annotated[Credit, Depends(json_body(Credit))],
    operator: AdminDep,
    actor: ActorDep,
) -> AccountOut:
    view = await operator.credit(
        account_id, "voucher", body.amount, body.reason, body.reference, actor
    )
    return account_out(view)


@router.put("/accounts/{account_id}/limits", response_model=AccountOut)
async def set_limits(
    account_id: str,
    body: Annotated[LimitsUpdate, Depends(json_body(LimitsUpdate))],
    operator: AdminDep,
    actor: ActorDep,
) -> AccountOut:
    limits = body.model_dump(exclude={"tier"})
    return account_out(await operator.set_limits(account_id, body.tier, actor, **limits))


@router.get("/usage", response_model=UsageReport)
async def usage(
    operator: AdminDep,
    group_by: Annotated[str, Query()] = "model",
    account: Annotated[str | None, Query()] = None,
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> UsageReport | Response:
    rows = await operator.usage(group_by, account, since, until)
    if format == "csv":
        return Response(
            admin.usage_csv(rows, group_by),
            media_type="text/csv",
            headers={"content-disposition": f'attachment; filename="usage-by-{group_by}.csv"'},
        )
    return UsageReport(
        group_by=group_by, rows=[_row(r) for r in rows], total=_row(admin.totals(rows))
    )


def _row(row: UsageRow) -> UsageRowOut:
    return UsageRowOut(
        group=row.group,
        requests=row.requests,
        prompt_tokens=row.prompt_tokens,
        cached_tokens=row.cached_tokens,
        completion_tokens=row.completion_tokens,
        cost=to_yuan(row.cost_micro),
    )


@router.get("/audit", response_model=list[AuditEventOut])
async def audit_log(
    operator: AdminDep,
    account: Annotated[str | None, Query(description="an account's id or name")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEventOut]:
    """Who changed keys, money and limits: newest first."""
    return [AuditEventOut(**asdict(event)) for event in await operator.audit_events(account, limit)]


@router.post("/accounts/{account_id}/projects", response_model=ProjectOut, status_code=201)
async def create_project(
    account_id: str,
    body: Annotated[ProjectCreate, Depends(json_body(ProjectCreate))],
    operator: AdminDep,
    actor: ActorDep,
) -> ProjectOut:
    view = await operator.create_project(
        account_id, body.name, body.daily_budget, body.monthly_budget, actor
    )
    return ProjectOut(**asdict(view))


@router.get("/accounts/{account_id}/projects", response_model=list[ProjectOut])
async def list_projects(account_id: str, operator: AdminDep) -> list[ProjectOut]:
    return [ProjectOut(**asdict(view)) for view in await operator.list_projects(account_id)]


@router.put("/projects/{project_id}/budgets", response_model=ProjectOut)
async def set_budgets(
    project_id: str,
    body: Annotated[Budgets, Depends(json_body(Budgets))],
    operator: AdminDep,
    actor: ActorDep,
) -> ProjectOut:
    view = await operator.set_budgets(project_id, body.daily_budget, body.monthly_budget, actor)
    return ProjectOut(**asdict(view))


@router.put("/projects/{project_id}/models", response_model=ProjectOut)
async def set_project_models(
    project_id: str,
    body: Annotated[ProjectModels, Depends(json_body(ProjectModels))],
    operator: AdminDep,
    actor: ActorDep,
) -> ProjectOut:
    """The models the project's keys may use (null: any); each key's own
    allowlist still applies on top."""
    view = await operator.set_project_models(project_id, body.allowed_models, actor)
    return ProjectOut(**asdict(view))


@router.put("/projects/{project_id}/limits", response_model=ProjectOut)
async def set_project_limits(
    project_id: str,
    body: Annotated[ProjectLimitsUpdate, Depends(json_body(ProjectLimitsUpdate))],
    operator: AdminDep,
    actor: ActorDep,
) -> ProjectOut:
    """The project's own rate limits, on top of its organisation's."""
    view = await operator.set_project_limits(project_id, ProjectLimits(**body.model_dump()), actor)
    return ProjectOut(**asdict(view))
