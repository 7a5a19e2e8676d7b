"""/v1/batches: create, list, retrieve, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from moonbase.api.bodies import json_body, openapi_body
from moonbase.api.deps import BatchesDep, CallerDep
from moonbase.api.paging import page_ends, page_size
from moonbase.schemas.batches import BatchCreate, BatchList, BatchObject

router = APIRouter()


@router.post("/v1/batches", response_model=BatchObject, openapi_extra=openapi_body(BatchCreate))
async def create(
    batches: BatchesDep,
    caller: CallerDep,  # authenticated before the body is parsed
    body: Annotated[BatchCreate, Depends(json_body(BatchCreate))],
) -> BatchObject:
    return await batches.create(
        caller, body.input_file_id, body.endpoint, body.completion_window, body.metadata
    )


@router.get("/v1/batches", response_model=BatchList)
async def list_batches(
    batches: BatchesDep,
    caller: CallerDep,
    limit: Annotated[str | None, Query()] = None,
    after: str | None = None,
) -> BatchList:
    data, has_more = await batches.list(
        caller.account_id,
        project_id=caller.project_id,
        limit=page_size(limit, default=20, most=100),
        after=after,
    )
    return BatchList(data=data, has_more=has_more, **page_ends(data))


@router.get("/v1/batches/{batch_id}", response_model=BatchObject)
async def retrieve(batch_id: str, batches: BatchesDep, caller: CallerDep) -> BatchObject:
    return await batches.get(caller.account_id, batch_id, project_id=caller.project_id)


@router.post("/v1/batches/{batch_id}/cancel", response_model=BatchObject)
async def cancel(batch_id: str, batches: BatchesDep, caller: CallerDep) -> BatchObject:
    return await batches.cancel(caller.account_id, batch_id, project_id=caller.project_id)
