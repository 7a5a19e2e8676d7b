"""Wire models of /v1/batches (the spec's BatchCreateRequest, BatchObject, BatchListResponse)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from moonbase import bounds
from moonbase.schemas.base import WireModel


class BatchCreate(WireModel):
    input_file_id: Annotated[str, bounds.ID]
    endpoint: Annotated[str, bounds.BATCH_ENDPOINT]
    completion_window: Annotated[str, bounds.COMPLETION_WINDOW]
    metadata: dict[str, Any] | None = None


class RequestCounts(WireModel):
    total: int
    completed: int
    failed: int


class BatchErrors(WireModel):
    object: Literal["list"] = "list"
    data: list[dict[str, Any]]


class BatchObject(WireModel):
    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: BatchErrors | None = None
    input_file_id: str
    completion_window: str
    status: str
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: RequestCounts
    metadata: dict[str, str] | None = None


class BatchList(WireModel):
    object: Literal["list"] = "list"
    data: list[BatchObject]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False
