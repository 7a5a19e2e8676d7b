"""Where file bytes live: a small interface, a local folder by default.

Uploads are first spooled to a local file (``spool_dir``), inspected there,
then handed to the store with ``put_file``. A blob appears under its key
whole or not at all: the local store renames a finished, fsynced file into
place; the S3 store (``s3_blobs``) uploads before the key exists.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

CHUNK_BYTES = 1024 * 1024


class BlobNotFound(KeyError):
    pass


class BlobStore(Protocol):
    spool_dir: Path

    async def put_file(self, key: str, source: Path) -> None:
        """Take ``source`` (a finished local file) into the store under ``key``."""

    async def put_bytes(self, key: str, data: bytes) -> None: ...

    async def read(self, key: str) -> bytes: ...

    def stream(self, key: str) -> AsyncIterator[bytes]: ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error (deletes are retried)."""

    async def close(self) -> None: ...


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBlobStore:
    """Blobs as files under one folder; keys are relative paths."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        # Inside the root so that put_file is a rename, not a copy.
        self.spool_dir = self.root / ".spool"
        self.spool_dir.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"blob key escapes the store: {key!r}")
        return path

    def _place(self, key: str, source: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with source.open("rb") as handle:
            os.fsync(handle.fileno())
        try:
            os.replace(source, target)
        except OSError:  # another filesystem: copy beside the target, then rename
            with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as temp:
                with source.open("rb") as src:
                    shutil.copyfileobj(src, temp, CHUNK_BYTES)
                temp.flush()
                os.fsync(temp.fileno())
            os.replace(temp.name, target)
            source.unlink(missing_ok=True)
        _fsync_dir(target.parent)

    async def put_file(self, key: str, source: Path) -> None:
        await asyncio.to_thread(self._place, key, source)

    def _write(self, key: str, data: bytes) -> None:
        with tempfile.NamedTemporaryFile(dir=self.spool_dir, delete=False) as temp:
            temp.write(data)
        self._place(key, Path(temp.name))

    async def put_bytes(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, key, data)

    def _read(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    async def read(self, key: str) -> bytes:
        return await asyncio.to_thread(self._read, key)

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        try:
            handle = await asyncio.to_thread(self._path(key).open, "rb")
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK_BYTES):
                yield chunk
        finally:
            handle.close()

    def _delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Drop the now-empty folders a file's blobs lived in.
        for parent in path.parents:
            if parent == self.root:
                break
            try:
                parent.rmdir()
            except OSError:
                break

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, key)

    async def close(self) -> None:
        return None
