"""The management API (/v1/organization/...), after OpenAI's Administration
API: an organisation's people, invitations, projects, their members and API
keys, admin keys, usage, costs and the audit log. Callers are people: an
admin key (``sk-admin-...``) or a session from ``POST /v1/auth/sessions``;
what each may do is decided in the service (auth/roles.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from moonbase.api.bodies import json_body
from moonbase.api.deps import OrganizationDep
from moonbase.auth.roles import Principal
from moonbase.errors import AuthenticationError
from moonbase.organization import usage
from moonbase.schemas import organization as wire


def bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError(
            "Send an admin key or a session token as 'Authorization: Bearer ...'",
            code="missing_credentials",
        )
    return token


async def get_principal(request: Request, service: OrganizationDep) -> Principal:
    address = request.client.host if request.client else None
    organization = request.headers.get("openai-organization")
    return await service.principal(bearer(request), organization, address)


PrincipalDep = Annotated[Principal, Depends(get_principal)]
Limit = Annotated[int, Query(ge=1, le=100)]
After = Annotated[str | None, Query(max_length=100)]

router = APIRouter(prefix="/v1/organization", tags=["organization"])
auth_router = APIRouter(prefix="/v1", tags=["organization"])


# Sign-in and invitations (no principal yet) ----------------------------------


@auth_router.post("/auth/sessions", response_model=wire.SessionOut, status_code=201)
async def sign_in(
    service: OrganizationDep, form: Annotated[wire.SignIn, Depends(json_body(wire.SignIn))]
) -> wire.SessionOut:
    return await service.sign_in(form.email, form.password)


@auth_router.delete("/auth/sessions/current", status_code=204)
async def sign_out(request: Request, service: OrganizationDep) -> None:
    await service.sign_out(bearer(request))


@auth_router.post("/invites/accept", response_model=wire.SessionOut, status_code=201)
async def accept_invite(
    request: Request,
    service: OrganizationDep,
    form: Annotated[wire.InviteAccept, Depends(json_body(wire.InviteAccept))],
) -> wire.SessionOut:
    """A new person sends a password; someone with an account sends their session."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    session = token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return await service.accept_invite(form, session)


# Users -------------------------------------------------------------------


@router.get("/users", response_model=wire.Page)
async def list_users(
    p: PrincipalDep, service: OrganizationDep, limit: Limit = 20, after: After = None
) -> wire.Page:
    return await service.list_users(p, limit, after)


@router.get("/users/{user_id}", response_model=wire.OrgUser)
async def get_user(p: PrincipalDep, service: OrganizationDep, user_id: str) -> wire.OrgUser:
    return await service.get_user(p, user_id)


@router.post("/users/{user_id}", response_model=wire.OrgUser)
async def set_user_role(
    p: PrincipalDep,
    service: OrganizationDep,
    user_id: str,
    form: Annotated[wire.RoleUpdate, Depends(json_body(wire.RoleUpdate))],
) -> wire.OrgUser:
    return await service.set_role(p, user_id, form.role)


@router.delete("/users/{user_id}", response_model=wire.Deleted)
async def remove_user(p: PrincipalDep, service: OrganizationDep, user_id: str) -> wire.Deleted:
    return await service.remove_user(p, user_id)


# Invitations ---------------------------------------------------------------


@router.get("/invites", response_model=wire.Page)
async def list_invites(
    p: PrincipalDep, service: OrganizationDep, limit: Limit = 20, after: After = None
) -> wire.Page:
    return await service.list_invites(p, limit, after)


@router.post("/invites", response_model=wire.InviteOut, status_code=201)
async def create_invite(
    request: Request,
    p: PrincipalDep,
    service: OrganizationDep,
    form: Annotated[wire.InviteCreate, Depends(json_body(wire.InviteCreate))],
) -> wire.InviteOut:
    return await service.create_invite(p, form, str(request.base_url))


@router.get("/invites/{invite_id}", response_model=wire.InviteOut)
async def get_invite(p: PrincipalDep, service: OrganizationDep, invite_id: str) -> wire.InviteOut:
    return await service.get_invite(p, invite_id)


@router.delete("/invites/{invite_id}", response_model=wire.Deleted)
async def delete_invite(p: PrincipalDep, service: OrganizationDep, invite_id: str) -> wire.Deleted:
    return await service.delete_invite(p, invite_id)


# Projects --------------------------------------------------------------------


@router.get("/projects", response_model=wire.Page)
async def list_projects(
    p: PrincipalDep, service: OrganizationDep, limit: Limit = 20, after: After = None
) -> wire.Page:
    return await service.list_projects(p, limit, after)


@router.post("/projects", response_model=wire.ProjectOut, status_code=201)
async def create_project(
    p: PrincipalDep,
    service: OrganizationDep,
    form: Annotated[wire.ProjectCreate, Depends(json_body(wire.ProjectCreate))],
) -> wire.ProjectOut:
    return await service.create_project(p, form)


@router.get("/projects/{project_id}", response_model=wire.ProjectOut)
async def get_project(
    p: PrincipalDep, service: OrganizationDep, project_id: str
) -> wire.ProjectOut:
    return await service.get_project(p, project_id)


@router.post("/projects/{project_id}", response_model=wire.ProjectOut)
async def update_project(
    p: PrincipalDep,
    service: OrganizationDep,
    project_id: str,
    form: Annotated[wire.ProjectUpdate, Depends(json_body(wire.ProjectUpdate))],
) -> wire.ProjectOut:
    return await service.update_project(p, project_id, form)


@router.get("/projects/{project_id}/users", response_model=wire.Page)
async def list_project_users(
    p: PrincipalDep,
    service: OrganizationDep,
    project_id: str,
    limit: Limit = 20,
    after: After = None,
) -> wire.Page:
    return await service.list_project_users(p, project_id, limit, after)


@router.post("/projects/{project_id}/users", response_model=wire.ProjectUser, status_code=201)
async def add_project_user(
    p: PrincipalDep,
    service: OrganizationDep,
    project_id: str,
    form: Annotated[wire.ProjectUserAdd, Depends(json_body(wire.ProjectUserAdd))],
) -> wire.ProjectUser:
    return await service.add_project_user(p, project_id, form)


@router.get("/projects/{project_id}/users/{user_id}", response_model=wire.ProjectUser)
async def get_project_user(
    p: PrincipalDep, service: OrganizationDep, project_id: str, user_id: str
) -> wire.ProjectUser:
    return await service.get_project_user(p, project_id, user_id)


@router.post("/projects/{project_id}/users/{user_id}", response_model=wire.ProjectUser)
async def set_project_role(
    p: PrincipalDep,
    service: OrganizationDep,
    project_id: str,
    user_id: str,
    form: Annotated[wire.RoleUpdate, Depends(json_body(wire.RoleUpdate))],
) -> wire.ProjectUser:
    return await service.set_project_role(p, project_id, user_id, form.role)


@router.delete("/projects/{project_id}/users/{user_id}", response_model=wire.Deleted)
async def remove_project_user(
    p: PrincipalDep, service: OrganizationDep, project_id: str, user_id: str
) -> wire.Deleted:
    return await service.remove_project_user(p, project_id, user_id)


@router.get("/projects/{project_id}/api_keys", response_model=wire.Page)
async def list_project_keys(
    p: PrincipalDep,
    service: OrganizationDep,
    project_id: str,
    limit: Limit = 20,
    after: After = None,
) -> wire.Page:
    return await service.list_project_keys(p, project_id, limit, after)


@router.post("/projects/{project_id}/api_keys", response_model=wire.ProjectApiKey, status_code=201)
async def create_project_key(
    p: PrincipalDep,
    service: OrganizationDep,
    project_id: str,
    form: Annotated[wire.ProjectKeyCreate, Depends(json_body(wire.ProjectKeyCreate))],
) -> wire.ProjectApiKey:
    return await service.create_project_key(p, project_id, form)


@router.get("/projects/{project_id}/api_keys/{key_id}", response_model=wire.ProjectApiKey)
async def get_project_key(
    p: PrincipalDep, service: OrganizationDep, project_id: str, key_id: str
) -> wire.ProjectApiKey:
    return await service.get_project_key(p, project_id, key_id)


@router.delete("/projects/{project_id}/api_keys/{key_id}", response_model=wire.Deleted)
async def delete_project_key(
    p: PrincipalDep, service: OrganizationDep, project_id: str, key_id: str
) -> wire.Deleted:
    return await service.delete_project_key(p, project_id, key_id)


# Admin keys ------------------------------------------------------------------


@router.get("/admin_api_keys", response_model=wire.Page)
async def list_admin_keys(
    p: PrincipalDep, service: OrganizationDep, limit: Limit = 20, after: After = None
) -> wire.Page:
    return await service.list_admin_keys(p, limit, after)


@router.post("/admin_api_keys", response_model=wire.AdminApiKey, status_code=201)
async def create_admin_key(
    p: PrincipalDep,
    service: OrganizationDep,
    form: Annotated[wire.AdminKeyCreate, Depends(json_body(wire.AdminKeyCreate))],
) -> wire.AdminApiKey:
    return await service.create_admin_key(p, form)


@router.get("/admin_api_keys/{key_id}", response_model=wire.AdminApiKey)
async def get_admin_key(p: PrincipalDep, service: OrganizationDep, key_id: str) -> wire.AdminApiKey:
    return await service.get_admin_key(p, key_id)


@router.delete("/admin_api_keys/{key_id}", response_model=wire.Deleted)
async def delete_admin_key(p: PrincipalDep, service: OrganizationDep, key_id: str) -> wire.Deleted:
    return await service.delete_admin_key(p, key_id)


# Usage and costs (by day, from the rollups) ----------------------------------------


def _query_lists(request: Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        params.setdefault(name, []).append(value)
    return params


@router.get("/usage/completions")
async def usage_completions(
    request: Request, p: PrincipalDep, service: OrganizationDep
) -> dict[str, Any]:
    query = usage.parse_query(_query_lists(request), usage.USAGE_GROUPS, max_limit=31)
    return await service.usage(p, query, costs=False)


@router.get("/costs")
async def costs(request: Request, p: PrincipalDep, service: OrganizationDep) -> dict[str, Any]:
    query = usage.parse_query(_query_lists(request), usage.COST_GROUPS, max_limit=180)
    return await service.usage(p, query, costs=True)


# Audit log ---------------------------------------------------------------------


@router.get("/audit_logs", response_model=wire.Page)
async def audit_logs(
    p: PrincipalDep, service: OrganizationDep, limit: Limit = 20, after: After = None
) -> wire.Page:
    return await service.audit_logs(p, limit, after)
