"""The upstream engine against scripted OpenAI-compatible servers over real TCP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, aclosing
from typing import Any

import httpx
import pytest

from moonbase import admin
from moonbase.app import create_app
from moonbase.engines.base import (
    ChatCall,
    ChatEvent,
    ChoiceFinished,
    PromptProcessed,
    ReasoningDelta,
    SamplingParams,
    TextDelta,
    ToolCallsMade,
    UsageReported,
)
from moonbase.engines.upstream.engine import UpstreamEngine
from moonbase.errors import BadRequestError, EngineOverloadedError, EngineUnavailableError
from moonbase.settings import EMBEDDED_ENGINE, Settings, UpstreamEngineSettings
from moonbase.store.database import Database
from tests.datafiles import kimi_cli_tools, mcp_filesystem_tools
from tests.fake_upstream import FakeUpstream, free_port, serving


def call(stream: bool = True, **body: Any) -> ChatCall:
    return ChatCall(
        request_id="req-1",
        body={"model": "kimi-k2-0905-preview", "messages": [{"role": "user", "content": "hi"}]}
        | body,
        max_tokens=64,
        sampling=SamplingParams(temperature=0.6),
        n=1,
        thinking=False,
        keep_reasoning=False,
        first_call_index=0,
        prompt_estimate=5,
        stream=stream,
    )


def engine(urls: list[str], flavour: str = "vllm", **settings: Any) -> UpstreamEngine:
    config = UpstreamEngineSettings(
        kind="upstream", flavour=flavour, urls=urls, model="served-name", **settings
    )
    return UpstreamEngine("test", config)


async def run(target: UpstreamEngine, chat: ChatCall) -> list[ChatEvent]:
    async with aclosing(target.chat(chat)) as events:
        return [event async for event in events]


@pytest.fixture
async def upstreams() -> AsyncIterator[list[tuple[FakeUpstream, str]]]:
    async with AsyncExitStack() as stack:
        apps = [FakeUpstream("a"), FakeUpstream("b")]
        urls = [await stack.enter_async_context(serving(app)) for app in apps]
        yield list(zip(apps, urls, strict=True))


@pytest.mark.parametrize("stream", [True, False])
async def test_reply_reasoning_calls_and_usage_come_back_as_events(upstreams, stream):
    (app, url), _ = upstreams
    app.script.reasoning = "first think"
    app.script.reasoning_field = "reasoning"  # newer vLLM's name
    app.script.tool_calls = [{"name": "get_weather", "arguments": '{"city": "Beijing"}'}]
    target = engine([url])
    events = await run(target, call(stream, tools=[], tool_choice="auto"))
    await target.close()
    assert isinstance(events[0], PromptProcessed)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert text == "Hello from upstream."
    assert reasoning.strip() == "first think"
    (made,) = [e for e in events if isinstance(e, ToolCallsMade)]
    assert made.calls == (
        {
            "id": "functions.get_weather:0",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Beijing"}'},
        },
    )
    assert [e.index for e in events if isinstance(e, ChoiceFinished)] == [0]
    assert events[-1] == UsageReported(prompt_tokens=21, completion_tokens=7, cached_tokens=16)
    sent = app.requests[-1]
    assert sent["model"] == "served-name"
    assert sent["max_tokens"] == 64 and sent["temperature"] == 0.6
    assert sent["chat_template_kwargs"]["thinking"] is False


async def test_vllm_partial_mode_continues_the_final_message(upstreams):
    (app, url), _ = upstreams
    messages = [
        {"role": "user", "content": "Name a fruit"},
        {"role": "assistant", "content": "Ban", "partial": True},
    ]
    target = engine([url])
    await run(target, call(messages=messages, thinking={"type": "enabled"}))
    await target.close()
    sent = app.requests[-1]
    assert sent["continue_final_message"] is True and sent["add_generation_prompt"] is False
    assert sent["messages"][-1] == {"role": "assistant", "content": "Ban"}
    assert "thinking" not in sent  # Moonshot's field became the template's kwargs


async def test_moonshot_flavour_passes_the_request_through(upstreams):
    (app, url), _ = upstreams
    messages = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "y", "partial": True},
    ]
    target = engine([url], flavour="moonshot")
    await run(
        target, call(messages=messages, thinking={"type": "enabled"}, max_completion_tokens=9)
    )
    await target.close()
    sent = app.requests[-1]
    assert sent["thinking"] == {"type": "enabled"}
    assert sent["messages"][-1]["partial"] is True
    assert sent["max_completion_tokens"] == 9 and "chat_template_kwargs" not in sent


async def test_a_refused_connection_goes_to_the_other_replica(upstreams):
    (app, url), _ = upstreams
    dead = f"http://127.0.0.1:{free_port()}/v1"
    target = engine([dead, url])
    for _ in range(3):
        events = await run(target, call())
        assert any(isinstance(e, TextDelta) for e in events)
    status = {r["url"]: r for r in (await target.health()).details["replicas"]}
    await target.close()
    assert status[dead]["healthy"] is False and "Connect" in status[dead]["last_error"]
    assert status[url]["served"] == 3
    assert len(app.requests) == 3


async def test_a_5xx_is_retried_on_another_replica(upstreams):
    (broken, broken_url), (app, url) = upstreams
    broken.script.status = 503
    target = engine([broken_url, url])
    events = await run(target, call(stream=False))
    await target.close()
    assert any(isinstance(e, TextDelta) for e in events)
    assert len(broken.requests) == 1 and len(app.requests) == 1


async def test_all_replicas_down_is_a_quick_503_with_retry_after():
    target = engine([f"http://127.0.0.1:{free_port()}/v1", f"http://127.0.0.1:{free_port()}/v1"])
    started = time.monotonic()
    with pytest.raises(EngineUnavailableError) as first:
        await run(target, call())
    with pytest.raises(EngineUnavailableError) as second:  # both ejected now: no attempt
        await run(target, call())
    await target.close()
    assert time.monotonic() - started < 30  # refused connections: no timeout was waited for
    assert first.value.status_code == 503 and first.value.error_type == "server_error"
    assert int(second.value.headers["retry-after"]) >= 1


async def test_every_replica_busy_is_engine_overloaded(upstreams):
    for app, _ in upstreams:
        app.script.status = 429
        app.script.retry_after = "3"
    target = engine([url for _, url in upstreams])
    with pytest.raises(EngineOverloadedError) as refused:
        await run(target, call())
    status = (await target.health()).details["replicas"]
    await target.close()
    assert refused.value.headers["retry-after"] == "3"
    assert all(replica["healthy"] for replica in status)  # busy is not broken


async def test_a_client_error_is_a_400_with_the_engines_words(upstreams):
    (app, url), _ = upstreams
    app.script.status = 400
    target = engine([url])
    with pytest.raises(BadRequestError, match="a says no"):
        await run(target, call())
    await target.close()


async def test_a_replica_dying_mid_stream_ends_in_an_error_not_a_hang(upstreams):
    (app, url), _ = upstreams
    app.script.content = "one two three four five six"
    app.script.drop_after_chunks = 3
    target = engine([url], read_timeout_s=5)
    seen: list[ChatEvent] = []
    with pytest.raises(EngineUnavailableError, match=r"mid-response|before the reply"):
        async with aclosing(target.chat(call())) as events:
            async for event in events:
                seen.append(event)
    await target.close()
    assert any(isinstance(e, TextDelta) for e in seen)


async def test_requests_go_to_the_replica_with_fewest_in_flight(upstreams):
    (a, url_a), (b, url_b) = upstreams
    for app in (a, b):
        app.script.delay_s = 0.3
    target = engine([url_a, url_b])
    await asyncio.gather(*(run(target, call(stream=False)) for _ in range(4)))
    await target.close()
    assert len(a.requests) == 2 and len(b.requests) == 2


async def test_the_health_check_brings_an_ejected_replica_back(upstreams):
    (app, url), _ = upstreams
    app.script.status = 500
    target = engine([url], health_interval_s=0.05)
    with pytest.raises(EngineUnavailableError):
        await run(target, call())
    assert not (await target.health()).ready
    app.script.status = 200
    for _ in range(100):
        if (await target.health()).ready:
            break
        await asyncio.sleep(0.02)
    events = await run(target, call())
    await target.close()
    assert any(isinstance(e, TextDelta) for e in events)


async def test_vllm_counts_tokens_with_its_tokenize_endpoint(upstreams):
    (app, url), _ = upstreams
    target = engine([url])
    count = await target.count_tokens("kimi-k2-0905-preview", [{"role": "user", "content": "hi"}])
    await target.close()
    assert count == 42
    assert app.paths[-1] == "/tokenize"  # beside /v1, where vLLM serves it
    assert app.requests[-1]["model"] == "served-name"


async def test_an_engine_without_tokenize_gets_an_estimate_and_stays_healthy(upstreams):
    (_, url), _ = upstreams
    target = engine([url], flavour="llamacpp")  # the fake has no /apply-template
    count = await target.count_tokens("kimi-k2-0905-preview", [{"role": "user", "content": "hi"}])
    ready = (await target.health()).ready
    await target.close()
    assert count == 5  # 1 token of text, 4 for the message
    assert ready


async def test_client_schemas_reach_the_upstream_exactly_as_sent(tmp_path, upstreams):
    """Tool and response schemas are validated at the server level, then passed
    on unchanged: nothing the embedded grammar sets aside is lost upstream."""
    (app, url), _ = upstreams
    settings = Settings(data_dir=tmp_path)
    db = Database(settings.resolved_database_url)
    await db.migrate()
    issued = await admin.bootstrap(db, settings.billing)
    assert issued is not None
    upstream = engine([url])  # the caller's, not the app's: closed here
    gateway = create_app(settings, engines={EMBEDDED_ENGINE: upstream}, db=db)
    tools = [*kimi_cli_tools()[:3], *mcp_filesystem_tools()[:2]]
    schema = tools[0]["function"]["parameters"]  # pydantic's, with defaults beside anyOf
    async with gateway.router.lifespan_context(gateway):
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://m") as client:
            for body in (
                {"tools": tools},
                {
                    "response_format": {
                        "type": "json_schema",
                        "json_schema": {"name": "s", "schema": schema},
                    }
                },
            ):
                response = await client.post(
                    "/v1/chat/completions",
                    headers={"Authorization": f"Bearer {issued.secret}"},
                    json={"model": "kimi-k2.6", "messages": [{"role": "user", "content": "hi"}]}
                    | body,
                )
                assert response.status_code == 200, response.text
                sent = app.requests[-1]
                for key, value in body.items():
                    assert sent[key] == value
    await upstream.close()
    await db.dispose()
