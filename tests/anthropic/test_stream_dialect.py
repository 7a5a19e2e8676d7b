"""Anthropic's SSE dialect (api/anthropic.py over api/sse.py): named events,
pings while the engine is silent, an error as an ``error`` event, no [DONE]."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from dataclasses import replace
from typing import Any

import pytest

from moonbase.api.anthropic import ANTHROPIC_SSE
from moonbase.api.sse import start_sse
from moonbase.errors import RateLimitError


async def body_of(chunks: AsyncGenerator[dict[str, Any], None], keepalive_s: float) -> str:
    response = await start_sse(chunks, replace(ANTHROPIC_SSE, keepalive_s=keepalive_s))
    parts = [part async for part in response.body_iterator]
    return "".join(part.decode() if isinstance(part, bytes) else str(part) for part in parts)


def events(text: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for block in text.strip().split("\n\n"):
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: ")
        payload = json.loads(data[len("data: ") :])
        assert payload["type"] == name[len("event: ") :]  # the SDKs read both
        found.append((payload["type"], payload))
    return found


async def test_a_silent_engine_gets_pings_and_nothing_ends_with_done():
    async def slow() -> AsyncGenerator[dict[str, Any], None]:
        yield {"type": "message_start", "message": {}}
        await asyncio.sleep(0.5)  # a long prompt still being read
        yield {"type": "message_stop"}

    text = await body_of(slow(), keepalive_s=0.1)
    kinds = [kind for kind, _ in events(text)]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds.count("ping") >= 2
    assert "[DONE]" not in text


async def test_an_error_mid_stream_is_an_error_event():
    async def failing() -> AsyncGenerator[dict[str, Any], None]:
        yield {"type": "message_start", "message": {}}
        raise RateLimitError("slow down", retry_after=3)

    found = events(await body_of(failing(), keepalive_s=10))
    kind, payload = found[-1]
    assert kind == "error"
    assert payload["error"] == {"type": "rate_limit_error", "message": "slow down"}


async def test_a_long_prompt_gets_pings_before_its_message_starts():
    async def prefilling() -> AsyncGenerator[dict[str, Any], None]:
        await asyncio.sleep(0.5)  # the engine still reading the prompt
        yield {"type": "message_start", "message": {}}
        yield {"type": "message_stop"}

    kinds = [kind for kind, _ in events(await body_of(prefilling(), keepalive_s=0.1))]
    first_start = kinds.index("message_start")
    assert first_start >= 2 and set(kinds[:first_start]) == {"ping"}
    assert kinds[-1] == "message_stop"


async def test_a_refusal_after_the_answer_started_is_an_error_event():
    async def refused_late() -> AsyncGenerator[dict[str, Any], None]:
        await asyncio.sleep(0.3)
        raise RateLimitError("queue full", retry_after=1)
        yield {}  # an async generator

    found = events(await body_of(refused_late(), keepalive_s=0.1))
    assert found[0][0] == "ping" and found[-1][0] == "error"


async def test_a_quick_refusal_is_still_a_plain_http_error():
    async def refused_at_once() -> AsyncGenerator[dict[str, Any], None]:
        raise RateLimitError("slow down", retry_after=3)
        yield {}  # an async generator

    with pytest.raises(RateLimitError):
        await start_sse(refused_at_once(), replace(ANTHROPIC_SSE, keepalive_s=5))
