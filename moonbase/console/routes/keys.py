"""API keys: the keys of every project the visitor sees, with their last use;
create (the secret shown once), disable and enable, rotate, revoke. Each
action is the management service's, which checks the visitor's role."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from moonbase.api.deps import OrganizationDep
from moonbase.auth.roles import OrgRole, Principal, ProjectRole
from moonbase.catalog import SPECS_BY_ID
from moonbase.console import forms
from moonbase.console.pages import MemberPage, Page, console_router, nav
from moonbase.errors import MoonbaseError
from moonbase.organization.service import OrganizationService
from moonbase.schemas import organization as wire

router = console_router()
nav("/console/keys", "nav.keys", order=30)
GRACE_CHOICES = (0, 3600, 86400, 7 * 86400)
KEYS_PER_PAGE = 100  # read by the page: a reseller's project may hold thousands


def may_create(p: Principal, project_id: str) -> bool:
    return p.manages_org or (p.role is OrgRole.MEMBER and project_id in p.projects)


def may_change(p: Principal, project_id: str, key: wire.ProjectApiKey) -> bool:
    mine = key.owner.user is not None and key.owner.user.get("id") == p.user_id
    manager = p.manages_org or (
        p.role is OrgRole.MEMBER and p.projects.get(project_id) is ProjectRole.OWNER
    )
    return manager or (mine and may_create(p, project_id))


async def _listing(
    page: Page, service: OrganizationService, status: int = 200, **extra: Any
) -> Response:
    p = page.signed_in
    projects = await service.projects(p)
    query = page.request.query_params
    chosen, after = query.get("project", ""), query.get("after") or None
    by_id = {x.id: x for x in projects}
    rows, older = [], ""
    if not chosen or chosen in by_id:  # any other choice shows no key
        found, more = await service.keys_page(p, chosen or None, KEYS_PER_PAGE, after)
        rows = [(by_id[pid], key, may_change(p, pid, key)) for pid, key in found]
        if more:
            older = "/console/keys?" + urlencode({"project": chosen, "after": found[-1][1].id})
    return page.render(
        "keys.html", status=status, projects=projects, chosen=chosen, rows=rows,
        older=older, first_page=after is None,
        creatable=[x for x in projects if may_create(p, x.id)], models=sorted(SPECS_BY_ID),
        graces=GRACE_CHOICES, **{"message": "", "form": {}, **extra},
    )  # fmt: skip


@router.get("/keys")
async def keys(page: MemberPage, service: OrganizationDep) -> Response:
    return await _listing(page, service)


@router.post("/keys")
async def create_key(page: MemberPage, service: OrganizationDep) -> Response:
    form = {name: await page.field(name) for name in ("project", "name", "expires", "ips")}
    models = await page.fields("models", 64)
    try:
        body = forms.wire(
            wire.ProjectKeyCreate,
            name=form["name"][:200],
            expires_at=forms.end_of_day(form["expires"], "expires_at"),
            allowed_ips=forms.words(form["ips"]) or None,
            allowed_models=models or None,
        )
        created = await service.create_project_key(page.signed_in, form["project"], body)
    except MoonbaseError as exc:
        return await _listing(
            page, service, status=exc.status_code, message=page.error_text(exc), form=form
        )
    return page.render("key_created.html", key=created, secret=created.value, rotated=False,
                       project_id=form["project"])  # fmt: skip


async def _row(page: Page, service: OrganizationService, project_id: str, key_id: str) -> Response:
    """After a change: the key's row (htmx swaps it in), or the list again."""
    if page.request.headers.get("hx-request") != "true":
        return page.redirect(f"/console/keys?project={project_id}")
    p = page.signed_in
    project = await service.get_project(p, project_id)
    key = await service.get_project_key(p, project_id, key_id)
    return page.render("key_row.html", project=project, key=key,
                       changeable=may_change(p, project_id, key), graces=GRACE_CHOICES)  # fmt: skip


@router.post("/keys/{project_id}/{key_id}/disable")
async def disable_key(
    page: MemberPage, service: OrganizationDep, project_id: str, key_id: str
) -> Response:
    await service.set_project_key_disabled(page.signed_in, project_id, key_id, True)
    return await _row(page, service, project_id, key_id)


@router.post("/keys/{project_id}/{key_id}/enable")
async def enable_key(
    page: MemberPage, service: OrganizationDep, project_id: str, key_id: str
) -> Response:
    await service.set_project_key_disabled(page.signed_in, project_id, key_id, False)
    return await _row(page, service, project_id, key_id)


@router.post("/keys/{project_id}/{key_id}/rotate")
async def rotate_key(
    page: MemberPage, service: OrganizationDep, project_id: str, key_id: str
) -> Response:
    grace = forms.number(await page.field("grace", 10) or "0", "grace_s", 0, 30 * 86400)
    rotated = await service.rotate_project_key(page.signed_in, project_id, key_id, grace)
    return page.render("key_created.html", key=rotated, secret=rotated.value, rotated=True,
                       project_id=project_id)  # fmt: skip


@router.post("/keys/{project_id}/{key_id}/revoke")
async def revoke_key(
    page: MemberPage, service: OrganizationDep, project_id: str, key_id: str
) -> Response:
    await service.delete_project_key(page.signed_in, project_id, key_id)
    return page.redirect(f"/console/keys?project={project_id}")
