"""A body that stops arriving gets a 408 and frees its connection (chat and uploads)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from moonbase.settings import Settings
from moonbase.store.database import Database
from tests.billing.accounts import funded_account
from tests.billing.gateway import live_gateway
from tests.fakes import ScriptedEngine


@pytest.mark.parametrize(
    ("path", "content_type", "start"),
    [
        ("/v1/chat/completions", "application/json", '{"model": '),
        (
            "/v1/files",
            "multipart/form-data; boundary=b",
            '--b\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nsome',
        ),
    ],
)
async def test_a_stalled_body_is_a_408(
    database: Database, tmp_path: Path, path: str, content_type: str, start: str
):
    _, key = await funded_account(database, "slowloris", cash="1")
    settings = Settings(data_dir=tmp_path, body_read_timeout_s=0.5)
    async with live_gateway(database, settings, ScriptedEngine()) as url:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: 100000\r\n\r\n"
                f"{start}"
            ).encode()
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
        assert head.startswith(b"HTTP/1.1 408"), head
        length = int(
            next(
                line.split(b":")[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
        )
        body = json.loads(await asyncio.wait_for(reader.readexactly(length), 60))
        assert body["error"]["code"] == "request_timeout"
        writer.close()
