"""Each family's tool-call format behind the chat API: a scripted engine whose
template says Llama 3.x, Mistral or Hermes writes a recorded-style reply, and
the API answers OpenAI tool calls, plain and streamed (and shows the model its
own format in the system block and in the history)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from moonbase.app import create_app
from moonbase.settings import EMBEDDED_ENGINE, Settings
from moonbase.store.database import Database
from tests.billing.accounts import funded_account
from tests.fakes import ScriptedEngine

CASES = {
    "hermes": (
        "Let me check.\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        "<tool_call>",
        "Let me check.",
    ),
    "llama3": (
        '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}',
        '"parameters"',
        "",
    ),
    "mistral": (
        '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abcDEF123"}]',
        "[TOOL_CALLS][",
        "",
    ),
    "mistral-args": ('[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}', "[ARGS]", ""),
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
HISTORY = [
    {"role": "user", "content": "Weather in Rome?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "functions.get_weather:0",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "functions.get_weather:0", "content": "sunny"},
    {"role": "user", "content": "And in Paris?"},
]


@pytest.fixture(params=sorted(CASES))
async def family(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, ScriptedEngine, httpx.AsyncClient]]:
    fmt = request.param
    settings = Settings(data_dir=tmp_path)
    db = Database(settings.resolved_database_url)
    await db.migrate()
    _, key = await funded_account(db, "tools", voucher="10")
    engine = ScriptedEngine(reply=CASES[fmt][0], tool_format=fmt)
    app = create_app(settings, engines={EMBEDDED_ENGINE: engine}, db=db)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://m", headers={"Authorization": f"Bearer {key}"}
        ) as client:
            yield fmt, engine, client
    await db.dispose()


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "kimi-k2-turbo-preview", "messages": HISTORY, "tools": TOOLS, **extra}


async def test_the_call_comes_back_as_an_openai_tool_call(
    family: tuple[str, ScriptedEngine, httpx.AsyncClient],
) -> None:
    fmt, engine, http = family
    answer = (await http.post("/v1/chat/completions", json=body())).json()
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["id"] == "functions.get_weather:1"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert choice["message"]["content"] == CASES[fmt][2]
    # The model was shown its own format: in the tool block and in the history.
    prompt = "\n".join(turn.content for turn in engine.rendered[-1])
    assert prompt.count(CASES[fmt][1]) >= 2, prompt
    assert "Rome" in prompt


async def test_the_streamed_call_is_the_same(
    family: tuple[str, ScriptedEngine, httpx.AsyncClient],
) -> None:
    fmt, _, http = family
    content, calls, finish = "", [], None
    async with http.stream("POST", "/v1/chat/completions", json=body(stream=True)) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            for choice in json.loads(line[6:])["choices"]:
                content += choice["delta"].get("content") or ""
                calls += choice["delta"].get("tool_calls") or []
                finish = choice.get("finish_reason") or finish
    assert finish == "tool_calls" and content == CASES[fmt][2]
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("get_weather", {"city": "Paris"})
    ]


async def test_each_streamed_call_goes_out_when_it_is_complete(tmp_path: Path) -> None:
    """Two Hermes calls, one character a token: the first call's delta is sent
    while the second is still being written, each with its own position."""
    reply = "".join(
        f'<tool_call>{{"name": "get_weather", "arguments": {{"city": "{city}"}}}}</tool_call>'
        for city in ("Paris", "Oslo")
    )
    settings = Settings(data_dir=tmp_path)
    db = Database(settings.resolved_database_url)
    await db.migrate()
    _, key = await funded_account(db, "tools", voucher="10")
    app = create_app(settings, engines={EMBEDDED_ENGINE: ScriptedEngine(reply=reply)}, db=db)
    chunks: list[dict[str, Any]] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://m", headers={"Authorization": f"Bearer {key}"}
        ) as http:
            request = {**body(stream=True), "messages": [{"role": "user", "content": "Both?"}]}
            async with http.stream("POST", "/v1/chat/completions", json=request) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: {"):
                        chunks.append(json.loads(line[6:]))
    await db.dispose()
    deltas = [
        call
        for chunk in chunks
        for choice in chunk["choices"]
        for call in choice["delta"].get("tool_calls") or []
    ]
    with_calls = [c for c in chunks if any(ch["delta"].get("tool_calls") for ch in c["choices"])]
    assert len(with_calls) == 2  # one chunk a call, not both at the end
    assert [(d["index"], d["id"]) for d in deltas] == [
        (0, "functions.get_weather:0"),
        (1, "functions.get_weather:1"),
    ]
