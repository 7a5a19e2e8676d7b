"""Files: one project's files (the project picked on the page, as a key of
that project would see them), upload with a progress bar (static/files.js),
a file's extracted text, download, delete. Everything goes through the
FileService with the same project scoping and account quotas as /v1/files;
``FileService.member_project`` decides who may see and change which project."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from starlette.responses import Response, StreamingResponse

from moonbase.api.deps import FilesDep, OrganizationDep
from moonbase.console.i18n import Translator
from moonbase.console.pages import MemberPage, Page, console_router, nav
from moonbase.errors import MoonbaseError
from moonbase.files.service import FileService
from moonbase.organization.service import OrganizationService
from moonbase.schemas.files import UPLOAD_PURPOSES
from moonbase.schemas.organization import ProjectOut
from moonbase.store.repositories.projects import default_project_id

router = console_router()
nav("/console/files", "nav.files", order=70)
PAGE_SIZE = 100
SHOWN_CHARS = 200_000  # of extracted text; the rest stays in the API's content
DONE = ("uploaded", "deleted")


def size_text(t: Translator, n: int) -> str:
    """1,234 bytes / 1.2 KB / 3.4 MB / 1.1 GB (字节 in Chinese)."""
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= scale:
            return t("files.size_unit", n=t.number(n / scale, 1), unit=unit)
    return t("files.size_bytes", n=t.number(n))


async def chosen_project(
    page: Page, org: OrganizationService
) -> tuple[list[ProjectOut], ProjectOut | None]:
    """The projects the visitor sees, and the one the page is about: ``?project=``
    (404 if they do not see it), else the organisation's default project, else
    the first they see."""
    projects = await org.projects(page.signed_in)
    asked = page.request.query_params.get("project", "")
    if asked:  # named: it is one the visitor sees, or it does not exist for them
        return projects, await org.get_project(page.signed_in, asked[:100])
    default = default_project_id(page.signed_in.account_id)
    chosen = next((x for x in projects if x.id == default), projects[0] if projects else None)
    return projects, chosen


def may_change(page: Page, project_id: str) -> bool:
    """Only to show the forms; the service checks again on every change."""
    try:
        page.signed_in.require_project_user(project_id, "")
    except MoonbaseError:
        return False
    return True


async def listing(
    page: Page, org: OrganizationService, files: FileService, status: int = 200, **extra: Any
) -> Response:
    projects, project = await chosen_project(page, org)
    rows: list[Any] = []
    more = False
    if project is not None:
        await files.member_project(page.signed_in, project.id)
        rows, more = await files.list(page.signed_in.account_id, project_id=project.id,
                                      purpose=None, limit=PAGE_SIZE, after=None)  # fmt: skip
    done = page.request.query_params.get("done", "")
    return page.render(
        "files.html", status=status, projects=projects, project=project, files=rows, more=more,
        changeable=project is not None and may_change(page, project.id),
        purposes=UPLOAD_PURPOSES, size=lambda n: size_text(page.t, n),
        done=f"files.done_{done}" if done in DONE else "", **{"message": "", **extra},
    )  # fmt: skip


@router.get("/files")
async def files_page(page: MemberPage, org: OrganizationDep, files: FilesDep) -> Response:
    return await listing(page, org, files)


@router.post("/files/upload")
async def upload(page: MemberPage, org: OrganizationDep, files: FilesDep) -> Response:
    """The multipart body streams to the FileService as /v1/files's does (its
    CSRF token comes as the X-CSRF-Token header: security.check_csrf)."""
    request = page.request
    project_id = request.query_params.get("project", "")[:100]
    p = page.signed_in
    try:
        await files.member_project(p, project_id, change="upload files")
        kind = request.headers.get("content-type", "")
        await files.upload(p.account_id, request.stream(), kind, project_id=project_id)
    except MoonbaseError as exc:
        return await listing(page, org, files, exc.status_code, message=page.error_text(exc))
    return page.redirect(f"/console/files?project={quote(project_id)}&done=uploaded")


@router.get("/files/{file_id}")
async def file_page(
    page: MemberPage, org: OrganizationDep, files: FilesDep, file_id: str
) -> Response:
    p = page.signed_in
    project_id = await files.member_project(p, page.request.query_params.get("project", ""))
    stored = await files.describe(p.account_id, file_id, project_id=project_id)
    text, cut = None, False
    if stored.purpose == "file-extract" and stored.status == "ready":
        found = await files.content(p.account_id, file_id, project_id=project_id)
        document = json.loads(b"".join([chunk async for chunk in found.chunks]))
        content = str(document.get("content") or "")
        text, cut = content[:SHOWN_CHARS], len(content) > SHOWN_CHARS
    project = await org.get_project(p, project_id)
    return page.render("file.html", file=stored, project=project, text=text, cut=cut,
                       changeable=may_change(page, project_id),
                       size=lambda n: size_text(page.t, n))  # fmt: skip


@router.get("/files/{file_id}/download")
async def download(page: MemberPage, files: FilesDep, file_id: str) -> Response:
    """The file's bytes as it was stored (a batch's output or errors: JSONL)."""
    p = page.signed_in
    project_id = await files.member_project(p, page.request.query_params.get("project", ""))
    stored = await files.get(p.account_id, file_id, project_id=project_id)
    name = quote(stored.filename, safe="")
    return StreamingResponse(
        files.blob_stream(stored),
        media_type=stored.content_type or "application/octet-stream",
        headers={"content-disposition": f"attachment; filename*=UTF-8''{name}"},
    )


@router.post("/files/{file_id}/delete")
async def delete(page: MemberPage, files: FilesDep, file_id: str) -> Response:
    p = page.signed_in
    project_id = await files.member_project(p, await page.field("project", 100),
                                            change="delete files")  # fmt: skip
    await files.delete(p.account_id, file_id, project_id=project_id)
    return page.redirect(f"/console/files?project={quote(project_id)}&done=deleted")
