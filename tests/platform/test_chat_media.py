"""Images and videos in chat: data URLs, http(s) URLs and ms:// files, checked and counted."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from moonbase import admin
from moonbase.app import create_app
from moonbase.chat.media import image_tokens, video_tokens
from moonbase.engines.base import MediaInput
from moonbase.settings import EMBEDDED_ENGINE, FilesSettings, MediaSettings, Settings
from moonbase.store.database import Database
from tests.billing.accounts import funded_account
from tests.fakes import ScriptedEngine
from tests.files import documents

VISION = "moonshot-v1-8k-vision-preview"


@dataclass
class MediaClient:
    http: httpx.AsyncClient
    alice: dict[str, str]
    bob: dict[str, str]
    vision: ScriptedEngine

    async def chat(self, content: list[dict[str, Any]], model: str = VISION, who=None):
        return await self.http.post(
            "/v1/chat/completions",
            headers=who or self.alice,
            json={"model": model, "messages": [{"role": "user", "content": content}]},
        )

    async def upload(self, data: bytes, purpose: str, name: str, who=None) -> str:
        response = await self.http.post(
            "/v1/files",
            headers=who or self.alice,
            files={"file": (name, data)},
            data={"purpose": purpose},
        )
        assert response.status_code == 200, response.text
        return str(response.json()["id"])


def last_media(engine: ScriptedEngine) -> MediaInput:
    """The one media item of the last prompt the engine rendered."""
    (media,) = [item for turn in engine.rendered[-1] for item in turn.media]
    return media


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def image_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def video_part(url: str) -> dict[str, Any]:
    return {"type": "video_url", "video_url": {"url": url, "id": None}}


TEXT = {"type": "text", "text": "What is in this picture?"}


async def _client(tmp_path: Path, media: MediaSettings) -> AsyncIterator[MediaClient]:
    settings = Settings(data_dir=tmp_path, media=media)
    db = Database(settings.resolved_database_url)
    await db.migrate()
    _, alice = await funded_account(db, "alice", voucher="10")
    _, bob = await funded_account(db, "bob", voucher="10")
    vision = ScriptedEngine(vision=True)
    engines = {EMBEDDED_ENGINE: ScriptedEngine(), "vision": vision}
    app = create_app(settings, engines=engines, db=db)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://m") as http:
            yield MediaClient(
                http,
                {"Authorization": f"Bearer {alice}"},
                {"Authorization": f"Bearer {bob}"},
                vision,
            )
    await db.dispose()


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[MediaClient]:
    async for made in _client(tmp_path, MediaSettings()):
        yield made


@pytest.fixture
async def intranet_client(tmp_path: Path) -> AsyncIterator[MediaClient]:
    async for made in _client(tmp_path / "intranet", MediaSettings(allow_private_urls=True)):
        yield made


@pytest.fixture
def picture_server() -> Iterator[str]:
    """An http server on loopback that serves one PNG at /cat.png."""
    body = documents.png(280, 140)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/cat.png":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("content-type", "image/png")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


async def test_vision_models_route_to_the_engine_that_sees(client: MediaClient) -> None:
    models = (await client.http.get("/v1/models", headers=client.alice)).json()["data"]
    cards = {card["id"]: card for card in models}
    assert cards[VISION]["supports_image_in"] is True
    assert cards["kimi-k2.6"]["supports_video_in"] is True
    assert cards["moonshot-v1-8k"]["supports_image_in"] is False


async def test_data_url_image_reaches_the_engine_and_is_counted(client: MediaClient) -> None:
    response = await client.chat([image_part(data_url(documents.png(64, 48))), TEXT])
    assert response.status_code == 200, response.text
    (turn,) = [t for t in client.vision.rendered[-1] if t.role == "user"]
    (media,) = turn.media
    assert (media.kind, media.mime_type, media.width, media.height) == (
        "image",
        "image/png",
        64,
        48,
    )
    assert media.tokens == image_tokens(64, 48) == 6
    estimate = await client.http.post(
        "/v1/tokenizers/estimate-token-count",
        headers=client.alice,
        json={"model": VISION, "messages": [{"role": "user", "content": [TEXT]}]},
    )
    with_image = await client.http.post(
        "/v1/tokenizers/estimate-token-count",
        headers=client.alice,
        json={
            "model": VISION,
            "messages": [
                {"role": "user", "content": [image_part(data_url(documents.png(64, 48))), TEXT]}
            ],
        },
    )
    text_only = estimate.json()["data"]["total_tokens"]
    assert with_image.json()["data"]["total_tokens"] == text_only + 6


async def test_images_are_decoded_in_the_bounded_child_not_the_server(
    client: MediaClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moonbase.files import media, service

    def in_the_server(*args: object) -> None:
        raise AssertionError("an image was decoded in the server process")

    monkeypatch.setattr(media, "probe_image", in_the_server)  # the child has its own
    running, most, purposes = 0, 0, []
    real = service.inspect_upload

    async def counted(purpose: str, *args: Any) -> Any:
        nonlocal running, most
        running, most = running + 1, max(most, running + 1)
        purposes.append(purpose)
        try:
            return await real(purpose, *args)
        finally:
            running -= 1

    monkeypatch.setattr(service, "inspect_upload", counted)
    requests = [
        client.chat([image_part(data_url(documents.png(32 + i, 32))), TEXT]) for i in range(5)
    ]
    replies = await asyncio.gather(*requests)
    assert [reply.status_code for reply in replies] == [200] * 5, replies[0].text
    assert purposes == ["image"] * 5
    assert most <= FilesSettings().max_inspections  # shared with uploads' bound
    # A decompression bomb is refused by the child with the reason.
    bomb_png = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(bomb_png, format="PNG")  # 144 Mpx in a few KB
    bomb = await client.chat([image_part(data_url(bomb_png.getvalue())), TEXT])
    assert bomb.status_code == 400
    assert "at most 100,000,000 pixels" in bomb.json()["error"]["message"]


async def test_text_model_refuses_images_naming_models_that_can(client: MediaClient) -> None:
    response = await client.chat(
        [image_part(data_url(documents.png())), TEXT], model="moonshot-v1-8k"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "cannot read image input" in error["message"] and VISION in error["message"]
    assert error["param"] == "messages[0].content[0]"


async def test_ms_file_of_the_caller_is_used_and_of_another_account_is_404(
    client: MediaClient,
) -> None:
    mine = await client.upload(documents.png(56, 56), "image", "me.png")
    ok = await client.chat([image_part(f"ms://{mine}"), TEXT])
    assert ok.status_code == 200, ok.text
    assert last_media(client.vision).width == 56
    theirs = await client.upload(documents.png(), "image", "bob.png", who=client.bob)
    refused = await client.chat([image_part(f"ms://{theirs}"), TEXT])
    assert refused.status_code == 404
    assert refused.json()["error"]["type"] == "resource_not_found_error"
    missing = await client.chat([image_part("ms://file-doesnotexist"), TEXT])
    assert missing.status_code == 404


async def test_ms_file_of_another_project_is_404(client: MediaClient, tmp_path: Path) -> None:
    """A file is its project's: another project of the same account cannot
    name it in a message either."""
    db = Database(Settings(data_dir=tmp_path).resolved_database_url)
    try:
        await admin.create_project(db, "alice", "lab")
        issued = await admin.create_key(db, "alice", project="lab")
        lab = {"Authorization": f"Bearer {issued.secret}"}
    finally:
        await db.dispose()
    mine = await client.upload(documents.png(56, 56), "image", "me.png")
    refused = await client.chat([image_part(f"ms://{mine}"), TEXT], who=lab)
    assert refused.status_code == 404
    assert refused.json()["error"]["type"] == "resource_not_found_error"
    theirs = await client.upload(documents.png(56, 56), "image", "lab.png", who=lab)
    assert (await client.chat([image_part(f"ms://{theirs}"), TEXT], who=lab)).status_code == 200
    assert (await client.chat([image_part(f"ms://{theirs}"), TEXT])).status_code == 404


async def test_ms_file_must_have_the_matching_purpose(client: MediaClient) -> None:
    document = await client.upload(b"just text", "file-extract", "a.txt")
    response = await client.chat([image_part(f"ms://{document}"), TEXT])
    assert response.status_code == 400
    assert "purpose 'image'" in response.json()["error"]["message"]


async def test_oversized_and_broken_data_urls_are_400(client: MediaClient) -> None:
    # 11 MB of image in 14.7 MB of base64: under the body cap, over the image limit.
    big = "data:image/png;base64," + "A" * (11 * 2**20 * 4 // 3)
    too_big = await client.chat([image_part(big), TEXT])
    assert too_big.status_code == 400
    assert "may be at most 10 MB" in too_big.json()["error"]["message"]
    # 20 MB: over the request body cap, refused before the body is parsed.
    huge = "data:image/png;base64," + "A" * (20 * 2**20 * 4 // 3)
    refused = await client.chat([image_part(huge), TEXT])
    assert refused.status_code == 413
    assert "ms://<file_id>" in refused.json()["error"]["message"]
    for url, fragment in [
        ("data:image/png;base64,@@@not-base64@@@", "not valid base64"),
        ("data:image/png," + "x" * 10, "must be base64"),
        (data_url(b"plain text, not a picture"), "not an image"),
        ("ftp://example.com/cat.png", "must be a data URL"),
    ]:
        response = await client.chat([image_part(url), TEXT])
        assert response.status_code == 400, url
        assert fragment in response.json()["error"]["message"], url


async def test_http_image_is_fetched_and_private_hosts_are_refused_by_default(
    client: MediaClient, intranet_client: MediaClient, picture_server: str
) -> None:
    refused = await client.chat([image_part(f"{picture_server}/cat.png"), TEXT])
    assert refused.status_code == 400
    assert "private, local or non-unicast addresses" in refused.json()["error"]["message"]
    fetched = await intranet_client.chat([image_part(f"{picture_server}/cat.png"), TEXT])
    assert fetched.status_code == 200, fetched.text
    assert last_media(intranet_client.vision).width == 280
    missing = await intranet_client.chat([image_part(f"{picture_server}/dog.png"), TEXT])
    assert missing.status_code == 400 and "HTTP 404" in missing.json()["error"]["message"]


async def test_video_by_data_url_and_by_ms_file(client: MediaClient, tmp_path: Path) -> None:
    clip = documents.mp4(tmp_path / "clip.mp4", frames=24, fps=12).read_bytes()
    inline = await client.chat([video_part(data_url(clip, "video/mp4")), TEXT], model="kimi-k2.6")
    assert inline.status_code == 200, inline.text
    media = last_media(client.vision)
    assert (media.kind, media.mime_type, media.width, media.height) == (
        "video",
        "video/mp4",
        64,
        48,
    )
    assert media.tokens == video_tokens(64, 48, media.duration_ms) == 4 * 6
    uploaded = await client.upload(clip, "video", "clip.mp4")
    by_file = await client.chat([video_part(f"ms://{uploaded}"), TEXT], model="kimi-k2.6")
    assert by_file.status_code == 200, by_file.text
    image_only = await client.chat([video_part(f"ms://{uploaded}"), TEXT], model=VISION)
    assert image_only.status_code == 400
    assert "cannot read video input" in image_only.json()["error"]["message"]


async def test_too_many_media_parts(client: MediaClient) -> None:
    parts = [image_part(data_url(documents.png()))] * 65
    response = await client.chat([*parts, TEXT])
    assert response.status_code == 400
    assert "at most 64" in response.json()["error"]["message"]


async def test_a_chunked_body_over_the_cap_is_refused(client: MediaClient) -> None:
    async def chunks():
        yield b'{"model": "moonshot-v1-8k", "messages": [{"role": "user", "content": "'
        for _ in range(17):
            yield b"x" * 2**20
        yield b'"}]}'

    response = await client.http.post(
        "/v1/chat/completions",
        headers={**client.alice, "content-type": "application/json"},
        content=chunks(),
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
