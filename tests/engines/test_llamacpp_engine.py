"""The embedded engine on its own: template, choices, cancellation, back-pressure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing

import pytest

from moonbase.engines.base import (
    ChatTurn,
    ChoiceFinished,
    GenerationRequest,
    PromptProcessed,
    SamplingParams,
    TextDelta,
)
from moonbase.engines.llamacpp.engine import LlamaCppEngine
from moonbase.errors import EngineOverloadedError
from moonbase.settings import EngineSettings


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[LlamaCppEngine]:
    running = await asyncio.to_thread(LlamaCppEngine, EngineSettings(n_ctx=2048, max_queued=1))
    yield running
    await running.close()


def request(
    prompt: tuple[int, ...],
    max_tokens: int = 16,
    n: int = 1,
    temperature: float = 0.0,
    stop: tuple[str, ...] = (),
) -> GenerationRequest:
    return GenerationRequest(
        request_id="test",
        prompt_tokens=prompt,
        max_tokens=max_tokens,
        sampling=SamplingParams(temperature=temperature, seed=7),
        n=n,
        stop=stop,
    )


async def test_renders_the_gguf_chat_template(engine: LlamaCppEngine):
    tokens = await engine.render_prompt([ChatTurn("user", "Hello")])
    text = engine._llm.detokenize(list(tokens), special=True).decode()
    # SmolLM2's template: ChatML with its default system prompt
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert text.endswith("<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n")
    assert engine.capabilities.context_length == 2048


async def test_choices_usage_and_prefix_reuse(engine: LlamaCppEngine):
    prompt = await engine.render_prompt([ChatTurn("user", "Name a fruit.")])
    events = [e async for e in engine.generate(request(prompt, max_tokens=8, n=3, temperature=1.0))]
    assert isinstance(events[0], PromptProcessed)
    assert events[0].prompt_tokens == len(prompt)
    finished = [e for e in events if isinstance(e, ChoiceFinished)]
    assert [f.index for f in finished] == [0, 1, 2]
    assert all(1 <= f.completion_tokens <= 8 for f in finished)
    assert {e.index for e in events if isinstance(e, TextDelta)} <= {0, 1, 2}
    # the same prompt again: all but the last token is already in the KV cache
    again = [e async for e in engine.generate(request(prompt, max_tokens=1))]
    assert again[0] == PromptProcessed(len(prompt), len(prompt) - 1)


async def test_closing_the_iterator_frees_the_engine(engine: LlamaCppEngine):
    prompt = await engine.render_prompt([ChatTurn("user", "Count from 1 to 1000.")])
    async with aclosing(engine.generate(request(prompt, max_tokens=2000))) as events:
        async for event in events:
            if isinstance(event, TextDelta):
                break
    loop = asyncio.get_running_loop()
    started = loop.time()
    events = [e async for e in engine.generate(request(prompt, max_tokens=1))]
    assert isinstance(events[-1], ChoiceFinished)
    assert loop.time() - started < 2  # 2,000 tokens would take ~15 s


async def test_a_full_queue_is_refused_with_retry_after(engine: LlamaCppEngine):
    prompt = await engine.render_prompt([ChatTurn("user", "Count from 1 to 1000.")])
    running = engine.generate(request(prompt, max_tokens=2000))
    queued = engine.generate(request(prompt, max_tokens=1))
    refused = engine.generate(request(prompt, max_tokens=1))
    try:
        assert isinstance(await anext(running), PromptProcessed)  # the worker is busy
        waiting = asyncio.ensure_future(anext(queued))  # takes the one queue place
        await asyncio.sleep(0.05)
        with pytest.raises(EngineOverloadedError) as caught:
            await anext(refused)
        assert caught.value.headers["retry-after"]
        assert caught.value.status_code == 429
        await running.aclose()
        assert isinstance(await waiting, PromptProcessed)  # the queued one then runs
    finally:
        await running.aclose()
        await queued.aclose()
