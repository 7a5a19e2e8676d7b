"""Wire models of /v1/files (the spec's FileObject, FileListResponse, FileDeleteResponse)."""

from __future__ import annotations

from typing import Literal

from moonbase.schemas.base import WireModel

# Purposes a client may upload with; batch_output files are written by batches.
UPLOAD_PURPOSES = ("file-extract", "image", "video", "batch")


class FileObject(WireModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str
    # Always a string, as the spec types it: "" when there is nothing to say.
    status_details: str = ""


class FileList(WireModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None


class FileDeleted(WireModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True
