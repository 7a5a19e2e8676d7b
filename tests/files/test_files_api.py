"""/v1/files through the whole app (SQLite and PostgreSQL), scripted engine behind it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from moonbase import admin
from moonbase.app import create_app
from moonbase.settings import EMBEDDED_ENGINE, FilesSettings, Settings
from moonbase.store.database import Database
from moonbase.store.tables import StoredFile
from tests.fakes import ScriptedEngine
from tests.files import documents


@dataclass
class FilesClient:
    http: httpx.AsyncClient
    alice: dict[str, str]
    bob: dict[str, str]
    blob_dir: Path

    async def upload(
        self, content: bytes, purpose: str = "file-extract", name: str = "a.txt", who=None
    ) -> httpx.Response:
        return await self.http.post(
            "/v1/files",
            headers=who or self.alice,
            files={"file": (name, content)},
            data={"purpose": purpose},
        )


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
async def files(database: Database, tmp_path: Path) -> AsyncIterator[FilesClient]:
    settings = Settings(
        data_dir=tmp_path,
        files=FilesSettings(
            max_file_bytes=4096, max_files_per_account=3, max_bytes_per_account=9000
        ),
    )
    alice = await admin.create_key(database, "alice")
    bob = await admin.create_key(database, "bob")
    app = create_app(settings, engines={EMBEDDED_ENGINE: ScriptedEngine()}, db=database)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://moonbase") as client:
            yield FilesClient(client, bearer(alice.secret), bearer(bob.secret), tmp_path / "blobs")


def blobs_on_disk(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() and ".spool" not in path.parts]


async def test_upload_list_retrieve_content_delete(files: FilesClient) -> None:
    uploaded = await files.upload("你好, moonbase".encode("gbk"), name="greeting.txt")
    assert uploaded.status_code == 200, uploaded.text
    body = uploaded.json()
    assert body["object"] == "file" and body["id"].startswith("file-")
    assert body["status"] == "ready" and body["purpose"] == "file-extract"
    assert body["bytes"] == len("你好, moonbase".encode("gbk"))
    assert body["filename"] == "greeting.txt"

    listed = (await files.http.get("/v1/files", headers=files.alice)).json()
    assert listed["object"] == "list" and [f["id"] for f in listed["data"]] == [body["id"]]
    got = await files.http.get(f"/v1/files/{body['id']}", headers=files.alice)
    assert got.json() == body

    content = await files.http.get(f"/v1/files/{body['id']}/content", headers=files.alice)
    document = json.loads(content.text)
    assert document == {
        "content": "你好, moonbase",
        "file_type": "text/plain",
        "filename": "greeting.txt",
        "title": "",
        "type": "file",
    }
    assert len(blobs_on_disk(files.blob_dir)) == 2  # original + extraction

    deleted = await files.http.delete(f"/v1/files/{body['id']}", headers=files.alice)
    assert deleted.json() == {"id": body["id"], "object": "file", "deleted": True}
    assert blobs_on_disk(files.blob_dir) == []
    gone = await files.http.get(f"/v1/files/{body['id']}", headers=files.alice)
    assert gone.status_code == 404
    assert gone.json()["error"]["type"] == "resource_not_found_error"


async def test_other_accounts_files_are_invisible(files: FilesClient) -> None:
    file_id = (await files.upload(b"alice's secret")).json()["id"]
    for method, path in [
        ("GET", f"/v1/files/{file_id}"),
        ("GET", f"/v1/files/{file_id}/content"),
        ("DELETE", f"/v1/files/{file_id}"),
    ]:
        response = await files.http.request(method, path, headers=files.bob)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"]["type"] == "resource_not_found_error"
    assert (await files.http.get("/v1/files", headers=files.bob)).json()["data"] == []
    # Still there for its owner.
    assert (await files.http.get(f"/v1/files/{file_id}", headers=files.alice)).status_code == 200


async def test_size_limits_with_moonshot_messages(files: FilesClient) -> None:
    too_large = await files.upload(b"x" * 4097, purpose="batch", name="big.jsonl")
    assert too_large.status_code == 400
    assert too_large.json()["error"]["message"] == (
        "File size is too large, max file size is 4096 bytes, please confirm and re-upload the file"
    )
    empty = await files.upload(b"", purpose="batch")
    assert empty.status_code == 400
    assert empty.json()["error"]["message"] == (
        "File size is zero, please confirm and re-upload the file"
    )
    assert (await files.upload(b"x" * 4096, purpose="batch")).status_code == 200
    assert (await files.upload(b"x" * 4096, purpose="batch")).status_code == 200
    over_quota = await files.upload(b"x" * 1000, purpose="batch")
    assert over_quota.status_code == 400
    assert "exceeded the max total size" in over_quota.json()["error"]["message"]
    assert (await files.upload(b"x" * 10, purpose="batch")).status_code == 200
    fourth = await files.upload(b"x", purpose="batch")
    assert fourth.status_code == 400
    assert fourth.json()["error"]["message"] == (
        "The number of files you have uploaded exceeded the max file count 3, "
        "please delete previous uploaded files"
    )
    assert len(blobs_on_disk(files.blob_dir)) == 3  # refused uploads leave nothing behind


async def test_concurrent_uploads_never_exceed_the_file_count(files: FilesClient) -> None:
    results = await asyncio.gather(*(files.upload(b"row", purpose="batch") for _ in range(8)))
    assert sorted(r.status_code for r in results) == [200] * 3 + [400] * 5
    listed = (await files.http.get("/v1/files", headers=files.alice)).json()["data"]
    assert len(listed) == 3
    assert len(blobs_on_disk(files.blob_dir)) == 3


async def test_bad_requests_are_moonshot_errors(files: FilesClient) -> None:
    no_purpose = await files.http.post(
        "/v1/files", headers=files.alice, files={"file": ("a.txt", b"hi")}
    )
    assert no_purpose.status_code == 400
    assert no_purpose.json()["error"]["param"] == "purpose"
    wrong = await files.upload(b"hi", purpose="fine-tune")
    assert wrong.status_code == 400 and "file-extract" in wrong.json()["error"]["message"]
    no_file = await files.http.post("/v1/files", headers=files.alice, data={"purpose": "batch"})
    assert no_file.status_code == 400
    as_json = await files.http.post("/v1/files", headers=files.alice, json={"purpose": "batch"})
    assert as_json.status_code == 400 and "multipart/form-data" in as_json.text
    bad_limit = await files.http.get("/v1/files?limit=abc", headers=files.alice)
    assert bad_limit.status_code == 400
    unauthenticated = await files.http.get("/v1/files")
    assert unauthenticated.status_code == 401


async def test_images_and_videos_are_proved_by_content(files: FilesClient, tmp_path: Path) -> None:
    image = await files.upload(documents.png(), purpose="image", name="photo.txt")
    assert image.status_code == 200 and image.json()["status"] == "ready"
    fake = await files.upload(b"not an image at all", purpose="image", name="photo.png")
    assert fake.status_code == 400
    assert "not a valid image" in fake.json()["error"]["message"]
    text_as_video = await files.upload(b"plain text", purpose="video", name="clip.mp4")
    assert text_as_video.status_code == 400
    message = text_as_video.json()["error"]["message"]
    assert "not a valid video" in message
    assert "/" not in message and "spool" not in message  # no server path leaks


async def test_unreadable_document_ends_in_error_not_500(files: FilesClient) -> None:
    response = await files.upload(b"%PDF-1.7\n garbage", name="broken.pdf")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "error"
    assert "damaged" in body["status_details"]
    content = await files.http.get(f"/v1/files/{body['id']}/content", headers=files.alice)
    assert content.status_code == 400
    assert "no extracted content" in content.json()["error"]["message"]


async def test_list_pages_newest_first_and_filters_by_purpose(files: FilesClient) -> None:
    ids = [(await files.upload(b"x", purpose="batch")).json()["id"] for _ in range(2)]
    ids.append((await files.upload(b"doc")).json()["id"])
    first = (await files.http.get("/v1/files?limit=2", headers=files.alice)).json()
    assert [f["id"] for f in first["data"]] == ids[::-1][:2] and first["has_more"]
    rest = (
        await files.http.get(f"/v1/files?limit=2&after={first['last_id']}", headers=files.alice)
    ).json()
    assert [f["id"] for f in rest["data"]] == [ids[0]] and not rest["has_more"]
    batch_only = (await files.http.get("/v1/files?purpose=batch", headers=files.alice)).json()
    assert {f["id"] for f in batch_only["data"]} == set(ids[:2])


async def test_media_dimensions_and_duration_are_recorded(
    files: FilesClient, database: Database, tmp_path: Path
) -> None:
    image = (await files.upload(documents.png(64, 48), purpose="image", name="p.png")).json()
    clip = documents.mp4(tmp_path / "clip.mp4", frames=24, fps=12).read_bytes()
    video = (await files.upload(clip, purpose="video", name="clip.mp4")).json()
    async with database.read() as session:
        image_row = await stored_row(session, image["id"])
        video_row = await stored_row(session, video["id"])
    assert (image_row.content_type, image_row.width, image_row.height) == ("image/png", 64, 48)
    assert (video_row.content_type, video_row.width, video_row.height) == ("video/mp4", 64, 48)
    assert video_row.duration_ms is not None and 1900 <= video_row.duration_ms <= 2100


async def stored_row(session, file_id: str) -> StoredFile:
    row = await session.get(StoredFile, file_id)
    assert row is not None
    return row


async def test_inspection_past_its_time_budget_ends_in_error(
    database: Database, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, files=FilesSettings(inspect_timeout_s=0.001))
    key = await admin.create_key(database, "hurried")
    app = create_app(settings, engines={EMBEDDED_ENGINE: ScriptedEngine()}, db=database)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://m") as http:
            response = await http.post(
                "/v1/files",
                headers=bearer(key.secret),
                files={"file": ("a.txt", b"some text")},
                data={"purpose": "file-extract"},
            )
    assert response.status_code == 200
    assert response.json()["status"] == "error"
    assert "took longer than" in response.json()["status_details"]


async def test_a_filename_that_looks_like_an_option_is_extracted(files: FilesClient) -> None:
    uploaded = await files.upload(b"notes of the day", name="-notes.txt")
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["status"] == "ready"
    content = await files.http.get(
        f"/v1/files/{uploaded.json()['id']}/content", headers=files.alice
    )
    assert json.loads(content.text)["content"] == "notes of the day"
    assert json.loads(content.text)["filename"] == "-notes.txt"


async def test_inspections_run_at_most_max_inspections_at_once(
    database: Database, tmp_path: Path, monkeypatch
) -> None:
    from moonbase.files import service as file_service

    running, most = 0, 0
    real = file_service.inspect_upload

    async def counted(*args, **kwargs):
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(0.2)  # long enough for the others to queue
            return await real(*args, **kwargs)
        finally:
            running -= 1

    monkeypatch.setattr(file_service, "inspect_upload", counted)
    settings = Settings(data_dir=tmp_path, files=FilesSettings(max_inspections=2))
    alice = await admin.create_key(database, "alice")
    app = create_app(settings, engines={EMBEDDED_ENGINE: ScriptedEngine()}, db=database)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://moonbase") as client:
            uploads = [
                client.post(
                    "/v1/files",
                    headers=bearer(alice.secret),
                    files={"file": (f"n{i}.txt", b"text %d" % i)},
                    data={"purpose": "file-extract"},
                )
                for i in range(6)
            ]
            results = await asyncio.gather(*uploads)
    assert [r.status_code for r in results] == [200] * 6
    assert most == 2
