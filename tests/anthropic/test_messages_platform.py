"""/anthropic/v1/messages on the scripted engine, driven by the official
``anthropic`` SDK in-process: shapes, streaming events, stop reasons, tool
use, errors in Anthropic's shape, and one account's usage across both APIs."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import httpx2
import pytest
from sqlalchemy import select

from moonbase.store.tables import UsageRecord
from tests.conftest import PlatformClient
from tests.contract_tools import ANTHROPIC_WEATHER

MODEL = "moonshot-v1-8k"
ASK = [{"role": "user", "content": "Say hello."}]
WEATHER = ANTHROPIC_WEATHER


def sdk(platform: PlatformClient, key: str | None = None) -> anthropic.AsyncAnthropic:
    # The SDK speaks through httpx2 (its own fork of httpx), on the app in-process.
    transport = httpx2.ASGITransport(app=platform.app)
    return anthropic.AsyncAnthropic(
        base_url="http://moonbase/anthropic",
        api_key=key or platform.key,
        http_client=httpx2.AsyncClient(transport=transport),
        max_retries=0,
    )


async def post(platform: PlatformClient, path: str, body: Any, **headers: str) -> httpx.Response:
    return await platform.http.post(
        f"/anthropic/v1{path}", json=body, headers={"x-api-key": platform.key, **headers}
    )


def assert_anthropic_error(response: httpx.Response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and set(body) == {"type", "error"}
    assert body["error"]["type"] == kind
    assert body["error"]["message"]
    return str(body["error"]["message"])


async def test_a_message_has_anthropics_shape_and_counts_match(platform: PlatformClient):
    client = sdk(platform)
    message = await client.messages.create(model=MODEL, max_tokens=64, messages=ASK)  # type: ignore[arg-type]
    assert message.id.startswith("msg_") and message.type == "message"
    assert message.role == "assistant" and message.model == MODEL
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == platform.engine.reply  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    counted = await client.messages.count_tokens(model=MODEL, messages=ASK)  # type: ignore[arg-type]
    usage = message.usage
    assert counted.input_tokens == usage.input_tokens + (usage.cache_read_input_tokens or 0)
    assert usage.output_tokens == len(platform.engine.reply)


async def test_the_stream_is_anthropics_event_sequence(platform: PlatformClient):
    client = sdk(platform)
    async with client.messages.stream(model=MODEL, max_tokens=64, messages=ASK) as stream:  # type: ignore[arg-type]
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert kinds[:3] == ["message_start", "content_block_start", "text"] or kinds[:2] == [
        "message_start",
        "content_block_start",
    ]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert final.content[0].text == platform.engine.reply  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == len(platform.engine.reply)
    raw = await post(platform, "/messages", {"model": MODEL, "max_tokens": 8, "messages": ASK,
                                              "stream": True})  # fmt: skip
    names = [line[len("event: ") :] for line in raw.text.splitlines() if line.startswith("event: ")]
    assert names[:2] == ["message_start", "ping"]
    assert "[DONE]" not in raw.text


@pytest.mark.parametrize("stream", [False, True])
async def test_stop_sequences_and_max_tokens_are_reported(platform: PlatformClient, stream: bool):
    client = sdk(platform)
    body = {"model": MODEL, "messages": ASK, "max_tokens": 64, "stop_sequences": ["scripted"]}
    if stream:
        async with client.messages.stream(**body) as events:  # type: ignore[arg-type]
            stopped = await events.get_final_message()
    else:
        stopped = await client.messages.create(**body)  # type: ignore[arg-type]
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "scripted"
    assert stopped.content[0].text == "Hello from the "  # type: ignore[union-attr]
    cut = await client.messages.create(model=MODEL, max_tokens=3, messages=ASK)  # type: ignore[arg-type]
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 3


@pytest.mark.parametrize("stream", [False, True])
async def test_a_forced_tool_call_is_a_tool_use_block(platform: PlatformClient, stream: bool):
    platform.engine.reply = json.dumps(
        {"calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}
    )
    client = sdk(platform)
    body = {
        "model": MODEL,
        "max_tokens": 200,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [WEATHER],
        "tool_choice": {"type": "any"},
    }
    if stream:
        async with client.messages.stream(**body) as events:  # type: ignore[arg-type]
            kinds = [event.type async for event in events]
            message = await events.get_final_message()
        assert "input_json" in kinds
    else:
        message = await client.messages.create(**body)  # type: ignore[arg-type]
    assert message.stop_reason == "tool_use"
    (use,) = message.content
    assert use.type == "tool_use" and use.id.startswith("toolu_")
    assert use.name == "get_weather" and use.input == {"city": "Paris"}
    # the round trip: the result goes back under the same id
    platform.engine.reply = "It is sunny."
    call = use.model_dump(include={"type", "id", "name", "input"})
    result = {"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}
    answer = await client.messages.create(
        model=MODEL,
        max_tokens=64,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [call]},  # type: ignore[list-item]
            {"role": "user", "content": [result]},  # type: ignore[list-item]
        ],
    )
    assert answer.stop_reason == "end_turn" and answer.content[0].text == "It is sunny."  # type: ignore[union-attr]
    *_, call, result = platform.engine.rendered[-1]
    assert call.role == "assistant" and "get_weather" in call.content and "Paris" in call.content
    assert "sunny" in result.content


async def test_aliases_and_both_auth_headers(platform: PlatformClient):
    message = await sdk(platform).messages.create(
        model="claude-3-5-haiku-latest",
        max_tokens=8,
        messages=ASK,  # type: ignore[arg-type]
    )
    assert message.model == "kimi-k2-0905-preview"
    bearer = await platform.http.post(
        "/anthropic/v1/messages",
        json={"model": MODEL, "max_tokens": 4, "messages": ASK},
        headers={"authorization": f"Bearer {platform.key}", "anthropic-version": "2023-06-01",
                 "anthropic-beta": "interleaved-thinking-2025-05-14"},
    )  # fmt: skip
    assert bearer.status_code == 200, bearer.text


async def test_errors_are_anthropic_shaped_and_typed(platform: PlatformClient):
    with pytest.raises(anthropic.AuthenticationError):
        await sdk(platform, key="sk-wrong").messages.create(model=MODEL, max_tokens=4, messages=ASK)  # type: ignore[arg-type]
    missing = await platform.http.post(
        "/anthropic/v1/messages", json={"model": MODEL, "max_tokens": 4, "messages": ASK}
    )
    assert "x-api-key" in assert_anthropic_error(missing, 401, "authentication_error")
    with pytest.raises(anthropic.NotFoundError):
        await sdk(platform).messages.create(model="no-such-model", max_tokens=4, messages=ASK)  # type: ignore[arg-type]
    with pytest.raises(anthropic.BadRequestError) as budget:
        await sdk(platform).messages.create(
            model="kimi-k2-thinking", max_tokens=2000, messages=ASK,  # type: ignore[arg-type]
            thinking={"type": "enabled", "budget_tokens": 100},
        )  # fmt: skip
    assert "budget_tokens" in str(budget.value)
    no_max = await post(platform, "/messages", {"model": MODEL, "messages": ASK})
    assert "max_tokens" in assert_anthropic_error(no_max, 400, "invalid_request_error")
    not_json = await platform.http.post(
        "/anthropic/v1/messages", content=b"{", headers={"x-api-key": platform.key}
    )
    assert_anthropic_error(not_json, 400, "invalid_request_error")
    fixed = await post(platform, "/messages", {"model": "kimi-k2.5", "max_tokens": 4,
                                               "messages": ASK, "top_p": 0.5})  # fmt: skip
    assert "top_p" in assert_anthropic_error(fixed, 400, "invalid_request_error")
    # A max_tokens no context holds is a 400, never a rate limit saying wait.
    for huge in (100_000, 10_000_000, 10**30):
        body = {"model": MODEL, "max_tokens": huge, "messages": ASK}
        too_long = await post(platform, "/messages", body)
        assert "token limit" in assert_anthropic_error(too_long, 400, "invalid_request_error")
    openai_style = await platform.post(
        "/v1/chat/completions", json={"model": MODEL, "max_tokens": 10_000_000, "messages": ASK}
    )
    assert openai_style.status_code == 400, openai_style.text
    wrong_method = await platform.http.get("/anthropic/v1/messages")
    assert_anthropic_error(wrong_method, 405, "invalid_request_error")
    platform.engine.overloaded = True
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        await sdk(platform).messages.create(model=MODEL, max_tokens=4, messages=ASK)  # type: ignore[arg-type]
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


async def test_a_body_over_the_limit_is_request_too_large(platform: PlatformClient):
    text = "x" * (17 * 2**20)
    huge = {"model": MODEL, "max_tokens": 4, "messages": [{"role": "user", "content": text}]}
    response = await post(platform, "/messages", huge)
    assert_anthropic_error(response, 413, "request_too_large")


async def test_both_apis_bill_one_account(platform: PlatformClient):
    before = (await platform.get("/v1/users/me/balance")).json()["data"]["available_balance"]
    await sdk(platform).messages.create(model=MODEL, max_tokens=16, messages=ASK)  # type: ignore[arg-type]
    openai_style = await platform.post(
        "/v1/chat/completions", json={"model": MODEL, "max_tokens": 16, "messages": ASK}
    )
    assert openai_style.status_code == 200
    await platform.settled()
    after = (await platform.get("/v1/users/me/balance")).json()["data"]["available_balance"]
    async with platform.db.transaction() as session:
        records = (await session.scalars(select(UsageRecord))).all()
    assert len(records) == 2
    assert len({record.api_key_id for record in records}) == 1
    assert records[0].prompt_tokens == records[1].prompt_tokens  # one prompt, one count
    assert after < before
