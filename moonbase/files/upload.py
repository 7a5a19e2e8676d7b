"""Receive a multipart upload straight into a spool file, never whole in memory.

Starlette's ``request.form()`` would buffer the body (to a temporary file
past 1 MB) before we could look at it; here python-multipart's push parser
sees each chunk as it arrives, the file part goes to disk in ~1 MB writes
off the event loop, and the size limit is known the moment it is crossed.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header

from moonbase.errors import BadRequestError

WRITE_BYTES = 1024 * 1024
MAX_FIELD_BYTES = 4096
# After the file is known to be too large the rest of the body is still read
# (and dropped), up to this much more, so that the client, still sending,
# receives the 400 instead of a broken pipe.
DRAIN_BYTES = 256 * 1024 * 1024


class FileTooLarge(Exception):
    pass


@dataclass
class ReceivedUpload:
    """A spooled upload. The caller owns ``path`` and must remove it."""

    path: Path
    filename: str = ""
    size: int = 0
    sha256: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    has_file: bool = False


class _Receiver:
    """python-multipart callbacks: headers, then data, of each part in turn."""

    def __init__(self, spool: BinaryIO, max_bytes: int) -> None:
        self.spool = spool
        self.max_bytes = max_bytes
        self.hash = hashlib.sha256()
        self.size = 0
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.too_large = False
        self.upload_name: str | None = None
        self.fields: dict[str, str] = {}
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._part_name = ""
        self._part_is_file = False
        self._field_value = bytearray()
        self.ended = False  # the closing boundary arrived

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        self._headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._part_name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        # The first part that carries a filename, or is named "file", is the upload.
        self._part_is_file = self.upload_name is None and (
            filename is not None or self._part_name == "file"
        )
        if self._part_is_file:
            self.upload_name = (filename or b"").decode("utf-8", "replace")
        self._field_value = bytearray()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._part_is_file:
            if len(self._field_value) < MAX_FIELD_BYTES:
                self._field_value += data[start:end]
            return
        self.size += end - start
        if self.size > self.max_bytes:
            self.too_large = True
        if self.too_large:
            return
        chunk = data[start:end]
        self.hash.update(chunk)
        self.pending.append(chunk)
        self.pending_bytes += len(chunk)

    def on_part_end(self) -> None:
        if not self._part_is_file and self._part_name:
            self.fields[self._part_name] = self._field_value.decode("utf-8", "replace").strip()

    def on_end(self) -> None:
        self.ended = True

    def take_pending(self) -> bytes:
        data = b"".join(self.pending)
        self.pending.clear()
        self.pending_bytes = 0
        return data


def _boundary(content_type: str) -> bytes:
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise BadRequestError(
            "Upload files as multipart/form-data with a 'file' part and a 'purpose' field",
            param="file",
        )
    return boundary


async def receive(
    body: AsyncIterator[bytes], content_type: str, spool_dir: Path, max_bytes: int
) -> ReceivedUpload:
    """Spool the file part of a multipart body; raise FileTooLarge past ``max_bytes``."""
    boundary = _boundary(content_type)
    path = spool_dir / f"upload-{secrets.token_hex(12)}"
    upload = ReceivedUpload(path=path)
    spool = await asyncio.to_thread(path.open, "wb")
    try:
        receiver = _Receiver(spool, max_bytes)
        parser = MultipartParser(boundary, receiver.callbacks())  # type: ignore[arg-type]
        received = 0
        async for chunk in body:
            received += len(chunk)
            try:
                parser.write(chunk)
            except Exception as error:  # python-multipart raises its own error types
                raise BadRequestError(f"The multipart body is malformed: {error}") from None
            if receiver.too_large and received > max_bytes + DRAIN_BYTES:
                break
            if receiver.pending_bytes >= WRITE_BYTES:
                await asyncio.to_thread(spool.write, receiver.take_pending())
        if receiver.too_large:
            raise FileTooLarge
        parser.finalize()
        if not receiver.ended:  # cut off: what arrived may be only part of the file
            raise BadRequestError(
                "The multipart body ended before its closing boundary; send the whole file"
            )
        await asyncio.to_thread(_finish, spool, receiver.take_pending())
    except BaseException:
        spool.close()
        path.unlink(missing_ok=True)
        raise
    spool.close()
    upload.has_file = receiver.upload_name is not None
    upload.filename = os.path.basename(receiver.upload_name or "").strip() or "upload"
    upload.size = receiver.size
    upload.sha256 = receiver.hash.hexdigest()
    upload.fields = receiver.fields
    return upload


def _finish(spool: BinaryIO, tail: bytes) -> None:
    spool.write(tail)
    spool.flush()
