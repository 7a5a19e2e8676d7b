"""A model that reasons natively (<think> in its output) behind the chat API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from moonbase.app import create_app
from moonbase.settings import EMBEDDED_ENGINE, Settings
from moonbase.store.database import Database
from tests.billing.accounts import funded_account
from tests.fakes import ScriptedEngine

REPLY = "<think>Two and two make four.</think>\n\nThe answer is 4."


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(data_dir=tmp_path)
    db = Database(settings.resolved_database_url)
    await db.migrate()
    _, key = await funded_account(db, "thinker", voucher="10")
    engine = ScriptedEngine(reply=REPLY, native_reasoning=True)
    app = create_app(settings, engines={EMBEDDED_ENGINE: engine}, db=db)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://m", headers={"Authorization": f"Bearer {key}"}
        ) as client:
            yield client
    await db.dispose()


def ask(model: str, **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "2+2?"}], **extra}


async def test_reasoning_is_parsed_out_of_the_output(http: httpx.AsyncClient) -> None:
    body = (await http.post("/v1/chat/completions", json=ask("kimi-k2.6"))).json()
    message = body["choices"][0]["message"]
    assert message["reasoning_content"] == "Two and two make four."
    assert message["content"] == "The answer is 4."
    assert body["usage"]["completion_tokens"] == len(REPLY)  # one token a character


async def test_streamed_reasoning_comes_before_the_content(http: httpx.AsyncClient) -> None:
    kinds: list[str] = []
    reasoning = content = ""
    async with http.stream(
        "POST", "/v1/chat/completions", json=ask("kimi-k2-thinking", stream=True)
    ) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            for choice in json.loads(line[6:])["choices"]:
                delta = choice["delta"]
                if delta.get("reasoning_content"):
                    kinds.append("reasoning")
                    reasoning += delta["reasoning_content"]
                if delta.get("content"):
                    kinds.append("content")
                    content += delta["content"]
    assert reasoning == "Two and two make four." and content == "The answer is 4."
    assert kinds == sorted(kinds, key=lambda kind: kind != "reasoning")


@pytest.mark.parametrize(
    "request_body",
    [ask("kimi-k2.6", thinking={"type": "disabled"}), ask("moonshot-v1-8k")],
    ids=["thinking-disabled", "model-without-thinking"],
)
async def test_without_thinking_the_reasoning_is_not_shown(
    http: httpx.AsyncClient, request_body: dict[str, object]
) -> None:
    message = (await http.post("/v1/chat/completions", json=request_body)).json()["choices"][0][
        "message"
    ]
    assert message.get("reasoning_content") is None
    assert message["content"] == "The answer is 4."
