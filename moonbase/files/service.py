"""The /v1/files semantics: limits, inspection, storage, ownership.

A file belongs to the project of the key that uploaded it (batch results: the
batch's project): every method takes the caller's ``project_id`` and another
project of the same account gets the same 404 as another account. Quotas
stay the account's, shared by its projects.

An upload is spooled, inspected in a child process, put in the blob store,
and only then recorded, in a transaction that also enforces the account's
file count and byte quota (the account row is locked, so two concurrent
uploads cannot both take the last slot). A crash at any step leaves at worst
an unreferenced blob, never a row without its bytes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from moonbase import bounds
from moonbase.auth.roles import Principal
from moonbase.errors import BadRequestError, NotFoundError
from moonbase.files import upload as uploads
from moonbase.files.blobs import BlobStore
from moonbase.files.inspection import Inspection, inspect_upload
from moonbase.schemas.files import UPLOAD_PURPOSES, FileObject
from moonbase.settings import FilesSettings
from moonbase.store.database import Database
from moonbase.store.repositories import files as file_rows
from moonbase.store.repositories import projects
from moonbase.store.repositories.ledger import lock_account
from moonbase.store.repositories.projects import owning
from moonbase.store.tables import StoredFile

log = logging.getLogger(__name__)

INSPECTED_PURPOSES = {"file-extract", "image", "video"}


def _mb(size: int) -> str:
    return f"{size // (1024 * 1024)}MB" if size >= 1024 * 1024 else f"{size} bytes"


def _size_name(size: int) -> str:
    return f"{size // 1024**3}GB" if size % 1024**3 == 0 else _mb(size)


@dataclass(frozen=True)
class FileContent:
    """What GET /v1/files/{id}/content sends: a stream and its media type."""

    media_type: str
    chunks: AsyncIterator[bytes]


class FileService:
    def __init__(self, db: Database, blobs: BlobStore, settings: FilesSettings) -> None:
        self.db = db
        self.blobs = blobs
        self.settings = settings
        # Each inspection child may use inspect_memory_mb: bound how many run.
        self._inspections = asyncio.Semaphore(settings.max_inspections)

    async def member_project(self, p: Principal, project_id: str, *, change: str = "") -> str:
        """The project a signed-in person (the console) acts in, as a key of it
        would: one of their organisation's that they see (else the 404 another
        project's file gets), and to change anything in it (``change`` says
        what) they must be one of its users (auth/roles.py: a viewer changes
        nothing). Quotas stay the account's, as for keys."""
        project = None
        if bounds.ID.check(project_id, "project_id") is None:
            async with self.db.read() as session:
                project = await projects.get(session, project_id)
        if project is None or project.account_id != p.account_id or not p.sees_project(project_id):
            raise NotFoundError(f"no project {project_id[:100]!r}", param="project_id")
        if change:
            p.require_project_user(project_id, change)
        return project_id

    async def inspect(self, purpose: str, path: Path, filename: str) -> Inspection:
        """Read ``path`` in the bounded inspection child: at most
        ``max_inspections`` run at once, for uploads and chat media alike."""
        async with self._inspections:
            return await inspect_upload(purpose, path, filename, self.settings)

    async def upload(
        self,
        account_id: str,
        body: AsyncIterator[bytes],
        content_type: str,
        *,
        project_id: str | None,
    ) -> FileObject:
        limit = self.settings.max_file_bytes
        try:
            received = await uploads.receive(body, content_type, self.blobs.spool_dir, limit)
        except uploads.FileTooLarge:
            raise BadRequestError(
                f"File size is too large, max file size is {_mb(limit)}, "
                "please confirm and re-upload the file",
                param="file",
                code="file_too_large",
            ) from None
        try:
            return file_object(await self._store(account_id, project_id, received))
        finally:
            received.path.unlink(missing_ok=True)

    async def _store(
        self, account_id: str, project_id: str | None, received: uploads.ReceivedUpload
    ) -> StoredFile:
        purpose = received.fields.get("purpose", "")
        if purpose not in UPLOAD_PURPOSES:
            raise BadRequestError(
                f"purpose must be one of {', '.join(UPLOAD_PURPOSES)}; got {purpose!r}",
                param="purpose",
            )
        if not received.has_file:
            raise BadRequestError("Send the file as a multipart part named 'file'", param="file")
        problem = bounds.FILENAME.check(received.filename, "the filename")
        if problem is not None:
            raise BadRequestError(problem, param="file")
        if received.size == 0:
            raise BadRequestError(
                "File size is zero, please confirm and re-upload the file", param="file"
            )
        async with self.db.read() as session:
            self._check_quota(await file_rows.totals(session, account_id), received.size)
        inspection = Inspection(status="ready", content_type=_declared_type(purpose))
        if purpose in INSPECTED_PURPOSES:
            inspection = await self.inspect(purpose, received.path, received.filename)
        if inspection.status == "refused":
            raise BadRequestError(
                f"The file is not a valid {purpose}: {inspection.details}", param="file"
            )
        file_id = file_rows.new_file_id()
        stored = StoredFile(
            id=file_id,
            account_id=account_id,
            project_id=owning(account_id, project_id),
            filename=received.filename,
            purpose=purpose,
            bytes=received.size,
            status=inspection.status,
            status_details=(inspection.details or None) and inspection.details[:1000],
            content_type=inspection.content_type,
            sha256=received.sha256,
            blob_key=f"{account_id}/{file_id}/original",
            width=inspection.width,
            height=inspection.height,
            duration_ms=inspection.duration_ms,
        )
        await self.blobs.put_file(stored.blob_key, received.path)
        if inspection.text is not None:
            stored.extract_key = f"{account_id}/{file_id}/extracted.json"
            await self.blobs.put_bytes(stored.extract_key, _extracted_document(stored, inspection))
        try:
            async with self.db.transaction() as session:
                await lock_account(session, account_id)
                self._check_quota(await file_rows.totals(session, account_id), received.size)
                session.add(stored)
        except BaseException:
            await self._drop_blobs(stored)
            raise
        return stored

    async def store_generated(
        self,
        account_id: str,
        filename: str,
        source: Path,
        size: int,
        sha256: str,
        *,
        project_id: str | None,
    ) -> StoredFile:
        """Keep a file moonbase wrote for the account (batch results, purpose
        batch_output; its writer knows its size and digest). Not held to the
        upload quota: results already paid for must never be lost to it."""
        file_id = file_rows.new_file_id()
        stored = StoredFile(
            id=file_id,
            account_id=account_id,
            project_id=owning(account_id, project_id),
            filename=filename,
            purpose="batch_output",
            bytes=size,
            status="ready",
            content_type="application/jsonl",
            sha256=sha256,
            blob_key=f"{account_id}/{file_id}/original",
        )
        await self.blobs.put_file(stored.blob_key, source)
        try:
            async with self.db.transaction() as session:
                session.add(stored)
        except BaseException:
            await self._drop_blobs(stored)
            raise
        return stored

    def blob_stream(self, stored: StoredFile) -> AsyncIterator[bytes]:
        return self.blobs.stream(stored.blob_key)

    def _check_quota(self, totals: file_rows.AccountFiles, size: int) -> None:
        if totals.count >= self.settings.max_files_per_account:
            raise BadRequestError(
                "The number of files you have uploaded exceeded the max file count "
                f"{self.settings.max_files_per_account}, please delete previous uploaded files",
                param="file",
                code="file_count_exceeded",
            )
        if totals.bytes + size > self.settings.max_bytes_per_account:
            raise BadRequestError(
                "The total size of the files you have uploaded exceeded the max total size "
                f"{_size_name(self.settings.max_bytes_per_account)}, "
                "please delete previous uploaded files",
                param="file",
                code="file_storage_exceeded",
            )

    async def get(self, account_id: str, file_id: str, *, project_id: str | None) -> StoredFile:
        if bounds.ID.check(file_id, "file_id") is not None:  # no file has such an id
            raise NotFoundError(f"File not found: {file_id[:100]!r}", param="file_id")
        async with self.db.read() as session:
            stored = await file_rows.get(session, account_id, file_id, project_id)
        if stored is None:
            raise NotFoundError(f"File not found: {file_id}", param="file_id")
        return stored

    async def describe(
        self, account_id: str, file_id: str, *, project_id: str | None
    ) -> FileObject:
        return file_object(await self.get(account_id, file_id, project_id=project_id))

    async def list(
        self,
        account_id: str,
        *,
        project_id: str | None,
        purpose: str | None,
        limit: int,
        after: str | None,
    ) -> tuple[list[FileObject], bool]:
        """One page, newest first, and whether more follow."""
        async with self.db.read() as session:
            rows = await file_rows.page(
                session, account_id, project_id, purpose=purpose, limit=limit + 1, after=after
            )
        return [file_object(row) for row in rows[:limit]], len(rows) > limit

    async def delete(self, account_id: str, file_id: str, *, project_id: str | None) -> None:
        if bounds.ID.check(file_id, "file_id") is not None:  # no file has such an id
            raise NotFoundError(f"File not found: {file_id[:100]!r}", param="file_id")
        async with self.db.transaction() as session:
            stored = await file_rows.remove(session, account_id, file_id, project_id)
        if stored is None:
            raise NotFoundError(f"File not found: {file_id}", param="file_id")
        await self._drop_blobs(stored)

    async def content(
        self, account_id: str, file_id: str, *, project_id: str | None
    ) -> FileContent:
        stored = await self.get(account_id, file_id, project_id=project_id)
        if stored.purpose == "file-extract":
            if stored.status != "ready" or stored.extract_key is None:
                raise BadRequestError(
                    f"File {file_id} has no extracted content: {stored.status_details}",
                    param="file_id",
                )
            return FileContent("text/plain; charset=utf-8", self.blobs.stream(stored.extract_key))
        return FileContent(stored.content_type, self.blobs.stream(stored.blob_key))

    async def read_bytes(self, stored: StoredFile) -> bytes:
        return await self.blobs.read(stored.blob_key)

    async def _drop_blobs(self, stored: StoredFile) -> None:
        for key in (stored.blob_key, stored.extract_key):
            if key is None:
                continue
            try:
                await self.blobs.delete(key)
            except Exception:  # an orphan blob wastes space; it must not fail the request
                log.exception("could not delete blob %s", key)


def _declared_type(purpose: str) -> str:
    return "application/jsonl" if purpose == "batch" else "application/octet-stream"


def _extracted_document(stored: StoredFile, inspection: Inspection) -> bytes:
    """Moonshot's extraction result: a JSON text meant to go into a system message as is."""
    document = {
        "content": inspection.text,
        "file_type": inspection.content_type,
        "filename": stored.filename,
        "title": inspection.title,
        "type": "file",
    }
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def file_object(stored: StoredFile) -> FileObject:
    return FileObject(
        id=stored.id,
        bytes=stored.bytes,
        created_at=int(stored.created_at.timestamp()),
        filename=stored.filename,
        purpose=stored.purpose,
        status=stored.status,
        status_details=stored.status_details or "",
    )
