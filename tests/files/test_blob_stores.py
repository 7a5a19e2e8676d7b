"""The blob store contract, on a local folder and on an S3-compatible server (moto's)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from moonbase import admin
from moonbase.app import create_app
from moonbase.files.blobs import BlobNotFound, BlobStore, LocalBlobStore
from moonbase.files.s3_blobs import S3BlobStore
from moonbase.settings import EMBEDDED_ENGINE, FilesSettings, S3Settings, Settings
from moonbase.store.database import Database
from tests.e2e.server import free_port
from tests.fakes import ScriptedEngine


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, **_CREDENTIALS).create_bucket(Bucket="moonbase")
    try:
        yield endpoint
    finally:
        server.stop()


_CREDENTIALS = {
    "region_name": "us-east-1",
    "aws_access_key_id": "test",
    "aws_secret_access_key": "test",
}


def s3_settings(endpoint: str) -> S3Settings:
    return S3Settings(
        bucket="moonbase",
        endpoint_url=endpoint,
        region="us-east-1",
        access_key_id="test",
        secret_access_key="test",
        prefix="blobs/",
    )


@pytest.fixture(params=["local", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    if request.param == "local":
        blobs: BlobStore = LocalBlobStore(tmp_path / "blobs")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        blobs = S3BlobStore(s3_settings(endpoint), spool_dir=tmp_path / "spool")
    yield blobs
    await blobs.close()


async def test_put_read_stream_delete(store: BlobStore) -> None:
    source = store.spool_dir / "upload"
    payload = bytes(range(256)) * 8192  # 2 MiB: more than one stream chunk
    source.write_bytes(payload)
    await store.put_file("acct/file-1/original", source)
    assert not source.exists()  # taken, not copied
    assert await store.read("acct/file-1/original") == payload
    assert b"".join([chunk async for chunk in store.stream("acct/file-1/original")]) == payload
    await store.put_bytes("acct/file-1/extracted.json", b'{"content": ""}')
    assert await store.read("acct/file-1/extracted.json") == b'{"content": ""}'
    await store.delete("acct/file-1/original")
    await store.delete("acct/file-1/original")  # deleting twice is fine
    with pytest.raises(BlobNotFound):
        await store.read("acct/file-1/original")


async def test_local_keys_cannot_escape_the_folder(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    with pytest.raises(ValueError, match="escapes"):
        await store.put_bytes("../outside", b"x")


async def test_files_api_on_s3(s3_endpoint: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, files=FilesSettings(s3=s3_settings(s3_endpoint)))
    db = Database(settings.resolved_database_url)
    await db.migrate()
    key = await admin.create_key(db, "s3-user")
    app = create_app(settings, engines={EMBEDDED_ENGINE: ScriptedEngine()}, db=db)
    headers = {"Authorization": f"Bearer {key.secret}"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://m") as http:
            uploaded = await http.post(
                "/v1/files",
                headers=headers,
                files={"file": ("n.md", "# 标题\n".encode())},
                data={"purpose": "file-extract"},
            )
            file_id = uploaded.json()["id"]
            content = await http.get(f"/v1/files/{file_id}/content", headers=headers)
            assert content.json()["content"] == "# 标题\n"
            assert (await http.delete(f"/v1/files/{file_id}", headers=headers)).status_code == 200
    await db.dispose()
