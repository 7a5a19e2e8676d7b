"""/v1/files: upload, list, retrieve, delete, content."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from moonbase.api.deps import CallerDep, ServicesDep
from moonbase.api.paging import page_ends, page_size
from moonbase.schemas.files import FileDeleted, FileList, FileObject
from moonbase.store.tables import StoredFile

router = APIRouter()


def render(stored: StoredFile) -> FileObject:
    return FileObject(
        id=stored.id,
        bytes=stored.bytes,
        created_at=int(stored.created_at.timestamp()),
        filename=stored.filename,
        purpose=stored.purpose,
        status=stored.status,
        status_details=stored.status_details or "",
    )


@router.post("/v1/files", response_model=FileObject)
async def upload(request: Request, services: ServicesDep, caller: CallerDep) -> FileObject:
    stored = await services.files.upload(
        caller.account_id, request.stream(), request.headers.get("content-type", "")
    )
    return render(stored)


@router.get("/v1/files", response_model=FileList)
async def list_files(
    services: ServicesDep,
    caller: CallerDep,
    purpose: str | None = None,
    limit: Annotated[str | None, Query()] = None,
    after: str | None = None,
) -> FileList:
    rows, has_more = await services.files.list(
        caller.account_id, purpose=purpose, limit=page_size(limit, 10_000, 10_000), after=after
    )
    data = [render(row) for row in rows]
    return FileList(data=data, has_more=has_more, **page_ends(data))


@router.get("/v1/files/{file_id}", response_model=FileObject)
async def retrieve(file_id: str, services: ServicesDep, caller: CallerDep) -> FileObject:
    return render(await services.files.get(caller.account_id, file_id))


@router.delete("/v1/files/{file_id}", response_model=FileDeleted)
async def delete(file_id: str, services: ServicesDep, caller: CallerDep) -> FileDeleted:
    await services.files.delete(caller.account_id, file_id)
    return FileDeleted(id=file_id)


@router.get("/v1/files/{file_id}/content")
async def content(file_id: str, services: ServicesDep, caller: CallerDep) -> StreamingResponse:
    found = await services.files.content(caller.account_id, file_id)
    return StreamingResponse(found.chunks, media_type=found.media_type)
