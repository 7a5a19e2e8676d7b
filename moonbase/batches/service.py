"""The /v1/batches semantics: create, read, list, cancel, answered as wire
objects (the routes never see a row). The worker does the rest.

A batch belongs to the project of the key that created it, and its input file
must be that project's too; another project of the same account gets the
same 404 as another account."""

from __future__ import annotations

import json
import time

from moonbase.auth.caller import KeyOwner
from moonbase.batches.requests import check_endpoint, check_metadata, window_seconds
from moonbase.errors import BadRequestError, NotFoundError
from moonbase.files.service import FileService
from moonbase.schemas.batches import BatchErrors, BatchObject, RequestCounts
from moonbase.settings import BatchSettings
from moonbase.store.database import Database
from moonbase.store.repositories import batches as batch_rows
from moonbase.store.repositories.projects import owning
from moonbase.store.tables import Batch


class BatchService:
    def __init__(self, db: Database, files: FileService, settings: BatchSettings) -> None:
        self.db = db
        self.files = files
        self.settings = settings

    async def create(
        self,
        caller: KeyOwner,
        input_file_id: str,
        endpoint: str,
        completion_window: str,
        metadata: dict[str, object] | None,
    ) -> BatchObject:
        check_endpoint(endpoint)
        window = window_seconds(completion_window)
        tags = check_metadata(metadata)
        stored = await self.files.get(
            caller.account_id, input_file_id, project_id=caller.project_id
        )
        if stored.purpose != "batch":
            raise BadRequestError(
                f"input_file_id {input_file_id} was uploaded with purpose {stored.purpose!r}; "
                "upload the .jsonl file with purpose 'batch'",
                param="input_file_id",
            )
        now = int(time.time())
        lasts = self.settings.window_seconds_override or window
        batch = Batch(
            id=batch_rows.new_batch_id(),
            account_id=caller.account_id,
            project_id=owning(caller.account_id, caller.project_id),
            api_key_id=caller.key_id or None,  # none: made in the console
            endpoint=endpoint,
            input_file_id=input_file_id,
            completion_window=completion_window,
            status="validating",
            metadata_json=json.dumps(tags, ensure_ascii=False),
            total=0,
            completed=0,
            failed=0,
            created_at=now,
            expires_at=now + int(lasts),
        )
        async with self.db.transaction() as session:
            session.add(batch)
        return batch_object(batch)

    async def get(self, account_id: str, batch_id: str, *, project_id: str | None) -> BatchObject:
        async with self.db.read() as session:
            batch = await batch_rows.get(session, account_id, batch_id, project_id)
        if batch is None:
            raise NotFoundError(f"Batch not found: {batch_id}", param="batch_id")
        return batch_object(batch)

    async def list(
        self, account_id: str, *, project_id: str | None, limit: int, after: str | None
    ) -> tuple[list[BatchObject], bool]:
        """One page, newest first, and whether more follow."""
        async with self.db.read() as session:
            rows = await batch_rows.page(
                session, account_id, project_id, limit=limit + 1, after=after
            )
        return [batch_object(row) for row in rows[:limit]], len(rows) > limit

    async def cancel(
        self, account_id: str, batch_id: str, *, project_id: str | None
    ) -> BatchObject:
        async with self.db.transaction() as session:
            batch = await batch_rows.lock_visible(session, account_id, batch_id, project_id)
            if batch is None:
                raise NotFoundError(f"Batch not found: {batch_id}", param="batch_id")
            if batch.status not in batch_rows.CANCELLABLE:
                raise BadRequestError(
                    f"batch {batch_id} is {batch.status}; only a validating, in_progress or "
                    "finalizing batch can be cancelled",
                    param="batch_id",
                )
            batch.status = "cancelling"
            batch.cancelling_at = int(time.time())
        return batch_object(batch)


def batch_object(batch: Batch) -> BatchObject:
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
