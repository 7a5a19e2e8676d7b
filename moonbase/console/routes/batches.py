"""Batches: one project's batches (the project picked as on the files page),
creating one from an uploaded batch file, its live progress (an htmx
fragment polled every 2 s until the batch ends), cancel, and its output and
error files (downloaded through the files page's route). Everything goes
through the BatchService with the API's project scoping; a batch made here
belongs to no key (api_key_id NULL) and runs within its project's allowlist
and budgets. ``FileService.member_project`` decides who may do what."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.responses import Response

from moonbase.api.deps import BatchesDep, FilesDep, OrganizationDep
from moonbase.auth.caller import KeyOwner
from moonbase.batches.requests import ENDPOINT
from moonbase.batches.service import BatchService
from moonbase.console.pages import MemberPage, Page, console_router, nav
from moonbase.console.routes.files import chosen_project, may_change
from moonbase.errors import MoonbaseError
from moonbase.files.service import FileService
from moonbase.organization.service import OrganizationService
from moonbase.store.repositories.batches import CANCELLABLE

router = console_router()
nav("/console/batches", "nav.batches", order=80)
WINDOWS = ("24h", "12h", "3d", "7d")
TERMINAL = ("completed", "failed", "expired", "cancelled")
POLL = "every 2s"


async def _listing(
    page: Page, org: OrganizationService, files: FileService, batches: BatchService,
    status: int = 200, **extra: Any,
) -> Response:  # fmt: skip
    projects, project = await chosen_project(page, org)
    rows: list[Any] = []
    inputs: list[Any] = []
    if project is not None:
        p = page.signed_in
        await files.member_project(p, project.id)
        rows, _ = await batches.list(p.account_id, project_id=project.id, limit=50, after=None)
        inputs, _ = await files.list(p.account_id, project_id=project.id, purpose="batch",
                                     limit=100, after=None)  # fmt: skip
    return page.render(
        "batches.html", status=status, projects=projects, project=project, batches=rows,
        inputs=inputs, endpoints=(ENDPOINT,), windows=WINDOWS, terminal=TERMINAL,
        changeable=project is not None and may_change(page, project.id),
        **{"message": "", "form": {}, **extra},
    )  # fmt: skip


@router.get("/batches")
async def batches_page(
    page: MemberPage, org: OrganizationDep, files: FilesDep, batches: BatchesDep
) -> Response:
    return await _listing(page, org, files, batches)


@router.post("/batches")
async def create_batch(
    page: MemberPage, org: OrganizationDep, files: FilesDep, batches: BatchesDep
) -> Response:
    names = ("project", "input_file_id", "endpoint", "completion_window")
    form = {name: await page.field(name, 100) for name in names}
    p = page.signed_in
    try:
        project_id = await files.member_project(p, form["project"], change="create batches")
        caller = KeyOwner("", p.account_id, project_id=project_id)  # no key: the console
        created = await batches.create(caller, form["input_file_id"], form["endpoint"],
                                       form["completion_window"], None)  # fmt: skip
    except MoonbaseError as exc:
        return await _listing(page, org, files, batches, exc.status_code,
                              message=page.error_text(exc), form=form)  # fmt: skip
    return page.redirect(f"/console/batches/{created.id}?project={quote(project_id)}")


def _progress(page: Page, batch: Any, project_id: str) -> dict[str, Any]:
    counts = batch.request_counts
    return {
        "batch": batch, "project_id": project_id, "terminal": batch.status in TERMINAL,
        "cancellable": batch.status in CANCELLABLE and may_change(page, project_id),
        "done": counts.completed + counts.failed, "poll": POLL,
    }  # fmt: skip


@router.get("/batches/{batch_id}")
async def batch_page(
    page: MemberPage, org: OrganizationDep, files: FilesDep, batches: BatchesDep, batch_id: str
) -> Response:
    p = page.signed_in
    project_id = await files.member_project(p, page.request.query_params.get("project", ""))
    batch = await batches.get(p.account_id, batch_id, project_id=project_id)
    project = await org.get_project(p, project_id)
    return page.render("batch.html", project=project, **_progress(page, batch, project_id))


@router.get("/batches/{batch_id}/progress")
async def batch_progress(
    page: MemberPage, files: FilesDep, batches: BatchesDep, batch_id: str
) -> Response:
    """The fragment htmx polls: it asks again while the batch runs, and stops
    asking (no trigger in it) once the batch has ended."""
    p = page.signed_in
    project_id = await files.member_project(p, page.request.query_params.get("project", ""))
    batch = await batches.get(p.account_id, batch_id, project_id=project_id)
    return page.render("batch_progress.html", **_progress(page, batch, project_id))


@router.post("/batches/{batch_id}/cancel")
async def cancel_batch(
    page: MemberPage, files: FilesDep, batches: BatchesDep, batch_id: str
) -> Response:
    p = page.signed_in
    project_id = await files.member_project(p, await page.field("project", 100),
                                            change="cancel batches")  # fmt: skip
    await batches.cancel(p.account_id, batch_id, project_id=project_id)
    return page.redirect(f"/console/batches/{batch_id}?project={quote(project_id)}")
