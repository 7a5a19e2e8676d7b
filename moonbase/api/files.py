"""/v1/files: upload, list, retrieve, delete, content (within the caller's project)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from moonbase.api.deps import CallerDep, FilesDep
from moonbase.api.paging import page_ends, page_size
from moonbase.schemas.files import FileDeleted, FileList, FileObject

router = APIRouter()


@router.post("/v1/files", response_model=FileObject)
async def upload(request: Request, files: FilesDep, caller: CallerDep) -> FileObject:
    return await files.upload(
        caller.account_id,
        request.stream(),
        request.headers.get("content-type", ""),
        project_id=caller.project_id,
    )


@router.get("/v1/files", response_model=FileList)
async def list_files(
    files: FilesDep,
    caller: CallerDep,
    purpose: str | None = None,
    limit: Annotated[str | None, Query()] = None,
    after: str | None = None,
) -> FileList:
    data, has_more = await files.list(
        caller.account_id,
        project_id=caller.project_id,
        purpose=purpose,
        limit=page_size(limit, 10_000, 10_000),
        after=after,
    )
    return FileList(data=data, has_more=has_more, **page_ends(data))


@router.get("/v1/files/{file_id}", response_model=FileObject)
async def retrieve(file_id: str, files: FilesDep, caller: CallerDep) -> FileObject:
    return await files.describe(caller.account_id, file_id, project_id=caller.project_id)


@router.delete("/v1/files/{file_id}", response_model=FileDeleted)
async def delete(file_id: str, files: FilesDep, caller: CallerDep) -> FileDeleted:
    await files.delete(caller.account_id, file_id, project_id=caller.project_id)
    return FileDeleted(id=file_id)


@router.get("/v1/files/{file_id}/content")
async def content(file_id: str, files: FilesDep, caller: CallerDep) -> StreamingResponse:
    found = await files.content(caller.account_id, file_id, project_id=caller.project_id)
    return StreamingResponse(found.chunks, media_type=found.media_type)
