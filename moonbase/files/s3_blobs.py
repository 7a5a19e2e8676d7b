"""Blobs in an S3-compatible bucket, for gateways and workers on several machines.

boto3 is synchronous; its calls run in threads (its clients are thread-safe).
Uploads are spooled locally first (as with the local store), so a blob key
exists only once its object is complete: S3 makes a PUT visible atomically.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from moonbase.files.blobs import CHUNK_BYTES, BlobNotFound
from moonbase.settings import S3Settings


class S3BlobStore:
    def __init__(self, settings: S3Settings, spool_dir: Path) -> None:
        import boto3

        self.bucket = settings.bucket
        self.prefix = settings.prefix
        self.spool_dir = spool_dir
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region,
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=settings.secret_access_key,
        )

    def _key(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def _upload(self, key: str, source: Path) -> None:
        self.client.upload_file(str(source), self.bucket, self._key(key))
        source.unlink(missing_ok=True)

    async def put_file(self, key: str, source: Path) -> None:
        await asyncio.to_thread(self._upload, key, source)

    async def put_bytes(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(
            self.client.put_object, Bucket=self.bucket, Key=self._key(key), Body=data
        )

    def _get(self, key: str) -> Any:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except self.client.exceptions.NoSuchKey:
            raise BlobNotFound(key) from None

    async def read(self, key: str) -> bytes:
        body = await asyncio.to_thread(self._get, key)
        try:
            return bytes(await asyncio.to_thread(body.read))
        finally:
            body.close()

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        body = await asyncio.to_thread(self._get, key)
        try:
            while chunk := await asyncio.to_thread(body.read, CHUNK_BYTES):
                yield chunk
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=self._key(key))

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)
