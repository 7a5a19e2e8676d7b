"""/v1/batches: create, list, retrieve, cancel."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from moonbase.api.bodies import json_body, openapi_body
from moonbase.api.deps import CallerDep, ServicesDep
from moonbase.api.paging import page_ends, page_size
from moonbase.schemas.batches import BatchCreate, BatchErrors, BatchList, BatchObject, RequestCounts
from moonbase.store.tables import Batch

router = APIRouter()


def render(batch: Batch) -> BatchObject:
    errors = json.loads(batch.errors_json) if batch.errors_json else None
    return BatchObject(
        id=batch.id,
        endpoint=batch.endpoint,
        errors=BatchErrors(data=errors) if errors else None,
        input_file_id=batch.input_file_id,
        completion_window=batch.completion_window,
        status=batch.status,
        output_file_id=batch.output_file_id,
        error_file_id=batch.error_file_id,
        created_at=batch.created_at,
        in_progress_at=batch.in_progress_at,
        expires_at=batch.expires_at,
        finalizing_at=batch.finalizing_at,
        completed_at=batch.completed_at,
        failed_at=batch.failed_at,
        expired_at=batch.expired_at,
        cancelling_at=batch.cancelling_at,
        cancelled_at=batch.cancelled_at,
        request_counts=RequestCounts(
            total=batch.total, completed=batch.completed, failed=batch.failed
        ),
        metadata=json.loads(batch.metadata_json) or None,
    )


@router.post("/v1/batches", response_model=BatchObject, openapi_extra=openapi_body(BatchCreate))
async def create(
    services: ServicesDep,
    caller: CallerDep,  # authenticated before the body is parsed
    body: Annotated[BatchCreate, Depends(json_body(BatchCreate))],
) -> BatchObject:
    batch = await services.batches.create(
        caller, body.input_file_id, body.endpoint, body.completion_window, body.metadata
    )
    return render(batch)


@router.get("/v1/batches", response_model=BatchList)
async def list_batches(
    services: ServicesDep,
    caller: CallerDep,
    limit: Annotated[str | None, Query()] = None,
    after: str | None = None,
) -> BatchList:
    rows, has_more = await services.batches.list(
        caller.account_id, limit=page_size(limit, default=20, most=100), after=after
    )
    data = [render(row) for row in rows]
    return BatchList(data=data, has_more=has_more, **page_ends(data))


@router.get("/v1/batches/{batch_id}", response_model=BatchObject)
async def retrieve(batch_id: str, services: ServicesDep, caller: CallerDep) -> BatchObject:
    return render(await services.batches.get(caller.account_id, batch_id))


@router.post("/v1/batches/{batch_id}/cancel", response_model=BatchObject)
async def cancel(batch_id: str, services: ServicesDep, caller: CallerDep) -> BatchObject:
    return render(await services.batches.cancel(caller.account_id, batch_id))
