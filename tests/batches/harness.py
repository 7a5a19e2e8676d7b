"""An app over a scripted engine whose batch worker the test drives step by step."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from moonbase.app import create_app
from moonbase.batches.worker import BatchWorker
from moonbase.settings import EMBEDDED_ENGINE, BatchSettings, Settings
from moonbase.store.database import Database
from tests.billing.accounts import funded_account
from tests.fakes import ScriptedEngine

MODEL = "moonshot-v1-8k"


def request_line(custom_id: str, content: str = "Hi", **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": MODEL, "messages": [{"role": "user", "content": content}], **body},
    }


def jsonl(lines: list[dict[str, Any]] | list[str]) -> bytes:
    return "".join(
        (line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines
    ).encode()


@dataclass
class Batches:
    http: httpx.AsyncClient
    headers: dict[str, str]
    other: dict[str, str]
    worker: BatchWorker
    engine: ScriptedEngine
    db: Database
    account_id: str

    async def upload(self, data: bytes, purpose: str = "batch", who=None) -> str:
        response = await self.http.post(
            "/v1/files",
            headers=who or self.headers,
            files={"file": ("requests.jsonl", data)},
            data={"purpose": purpose},
        )
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    async def create(self, file_id: str, who=None, **fields: Any) -> httpx.Response:
        body = {
            "input_file_id": file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            **fields,
        }
        return await self.http.post("/v1/batches", headers=who or self.headers, json=body)

    async def submit(self, lines: list[dict[str, Any]] | list[str]) -> str:
        response = await self.create(await self.upload(jsonl(lines)))
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "validating"
        return str(response.json()["id"])

    async def get(self, batch_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/v1/batches/{batch_id}", headers=self.headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def drain(self) -> None:
        """Let the worker run until no batch needs it."""
        while await self.worker.step():
            pass

    async def lines_of(self, file_id: str | None) -> list[dict[str, Any]]:
        if file_id is None:
            return []
        response = await self.http.get(f"/v1/files/{file_id}/content", headers=self.headers)
        return [json.loads(line) for line in response.text.splitlines()]


@asynccontextmanager
async def batches_app(
    db: Database, tmp_path: Path, engine: ScriptedEngine | None = None, **batch: Any
) -> AsyncIterator[Batches]:
    settings = Settings(
        data_dir=tmp_path,
        batches=BatchSettings(run_worker=False, poll_interval_s=0.05, **batch),
    )
    account_id, key = await funded_account(db, "batcher", voucher="100")
    _, other = await funded_account(db, "someone-else", voucher="100")
    engine = engine or ScriptedEngine(reply="ok")
    app = create_app(settings, engines={EMBEDDED_ENGINE: engine}, db=db)
    async with app.router.lifespan_context(app):
        services = app.state.services
        worker = BatchWorker(db, services.files, services.chat, services.billing, settings.batches)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://m") as http:
            yield Batches(
                http,
                {"Authorization": f"Bearer {key}"},
                {"Authorization": f"Bearer {other}"},
                worker,
                engine,
                db,
                account_id,
            )
