"""The embedded engine with long prompts: prefill beside running streams, idle
slots parked in host memory, and the prefix cache's bounds."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from moonbase.engines.base import ChatTurn, PromptProcessed, TextDelta
from moonbase.engines.llamacpp.engine import LlamaCppEngine
from moonbase.settings import EngineSettings
from tests.engines.test_llamacpp_engine import collect, request

# The most prompt tokens a step may read between two tokens of a running
# stream. Beside four streams on a 2-core machine the measured share
# (prefill_share 0.8) allows about 25 and the floor, 64, holds; a whole batch
# would be 512.
MOST_PROMPT_TOKENS_BETWEEN_STREAM_TOKENS = 128

SENTENCE = "The archive keeps records of ships, harbours, storms and the people who sailed. "


async def start(**settings) -> LlamaCppEngine:
    return await asyncio.to_thread(LlamaCppEngine, EngineSettings(**settings))


def document_turns(approx_tokens: int) -> list[ChatTurn]:
    """A system message holding a document, as the file-extract flow sends it."""
    document = f"Session {secrets.token_hex(8)}. " + SENTENCE * (approx_tokens // 16)
    return [ChatTurn("system", document), ChatTurn("user", "Summarise the archive in one line.")]


async def document_prompt(engine: LlamaCppEngine, approx_tokens: int) -> tuple[int, ...]:
    return await engine.render_prompt(document_turns(approx_tokens))


async def details(engine: LlamaCppEngine) -> dict:
    return (await engine.health()).details


async def test_a_long_prompt_beside_four_streams_pauses_none_of_them():
    engine = await start(n_ctx=8192, slots=5)
    try:
        story = await engine.render_prompt([ChatTurn("user", "Write a very long story.")])
        started = [asyncio.Event() for _ in range(4)]

        async def stream(i: int) -> int:
            produced = 0
            async for event in engine.generate(request(story, max_tokens=400)):
                if isinstance(event, TextDelta):
                    produced += event.tokens
                    started[i].set()
            return produced

        streams = [asyncio.ensure_future(stream(i)) for i in range(4)]
        for event in started:
            await event.wait()
        document = await document_prompt(engine, 4000)
        first_step = engine.recent_steps()[-1].number
        events, _ = await collect(engine, request(document, max_tokens=1))
        assert events[0] == PromptProcessed(len(document), events[0].cached_tokens)
        window = [s for s in engine.recent_steps() if s.number > first_step]
        beside = [s for s in window if s.generating and s.prompt_tokens]
        # Every step that read the document also gave each running stream its
        # next token, and read no more than the stated bound.
        assert beside, "the document was never read beside the streams"
        assert max(s.prompt_tokens for s in beside) <= MOST_PROMPT_TOKENS_BETWEEN_STREAM_TOKENS
        assert sum(s.prompt_tokens for s in window) >= len(document) - events[0].cached_tokens
        assert any(s.generating == 4 for s in beside)
        largest = (await details(engine))["largest_prompt_chunk_beside_streams"]
        assert 0 < largest <= MOST_PROMPT_TOKENS_BETWEEN_STREAM_TOKENS
        for produced in await asyncio.gather(*streams):
            assert produced > 1
    finally:
        await engine.close()


async def test_a_prompt_alone_is_read_a_whole_batch_per_step():
    engine = await start(n_ctx=4096, slots=2)
    try:
        document = await document_prompt(engine, 1500)
        events, _ = await collect(engine, request(document, max_tokens=1))
        reading = [s.prompt_tokens for s in engine.recent_steps() if s.prompt_tokens]
        assert reading[:2] == [512, 512]  # n_batch, the whole batch
        assert sum(reading) == len(document) - events[0].cached_tokens
    finally:
        await engine.close()


async def test_idle_slots_leave_the_kv_cache_and_come_back_as_cached_tokens():
    engine = await start(n_ctx=8192, slots=4)
    try:
        chats = [document_turns(400) for _ in range(4)]
        conversations = [await engine.render_prompt(turns) for turns in chats]
        await asyncio.gather(*(collect(engine, request(p, max_tokens=8)) for p in conversations))
        assert (await details(engine))["idle_cells"] >= sum(map(len, conversations))
        # A new prompt parks every idle slot it does not use: while it runs,
        # the KV cache holds its cells only.
        other = await document_prompt(engine, 400)
        running = engine.generate(request(other, max_tokens=200))
        try:
            assert isinstance(await anext(running), PromptProcessed)
            now = await details(engine)
            assert now["idle_cells"] == 0
            assert now["prefix_cache_entries"] >= 3
        finally:
            await running.aclose()
        # A follow-up to a parked conversation reads only what is new.
        first = conversations[0]
        follow_up = await engine.render_prompt(
            [*chats[0], ChatTurn("assistant", "It records ships."), ChatTurn("user", "Storms?")]
        )
        before = await details(engine)
        events, _ = await collect(engine, request(follow_up, max_tokens=4))
        after = await details(engine)
        assert events[0].cached_tokens >= len(first) - 1
        assert after["prompt_tokens_decoded"] - before["prompt_tokens_decoded"] == (
            len(follow_up) - events[0].cached_tokens
        )
    finally:
        await engine.close()


async def test_the_prefix_cache_keeps_the_most_recent_within_its_memory_bound():
    # SmolLM2-135M's cells take 23,040 bytes: 23 MB hold about 1,040 of them.
    engine = await start(n_ctx=4096, slots=1, prefix_cache_mb=23)
    try:
        prompts = [await document_prompt(engine, 400) for _ in range(4)]  # ~430 tokens each
        for prompt in prompts:
            await collect(engine, request(prompt, max_tokens=4))
        # One slot: each new prompt parked the one before. The bound holds two.
        now = await details(engine)
        assert now["prefix_cache_bytes"] <= 23 * 2**20
        assert now["prefix_cache_entries"] == 2
        oldest, _ = await collect(engine, request(prompts[0], max_tokens=1))
        assert oldest[0].cached_tokens < 16  # evicted first: read again
        recent, _ = await collect(engine, request(prompts[2], max_tokens=1))
        assert recent[0].cached_tokens == len(prompts[2]) - 1
    finally:
        await engine.close()


async def test_parked_prefixes_expire_after_their_age_bound(monkeypatch: pytest.MonkeyPatch):
    now = [0.0]  # the cache's clock, held still so the machine's speed does not matter
    monkeypatch.setattr("moonbase.engines.llamacpp.prefix_cache.monotonic", lambda: now[0])
    engine = await start(n_ctx=4096, slots=1, prefix_cache_max_age_s=60)
    try:
        first, second = [await document_prompt(engine, 300) for _ in range(2)]
        await collect(engine, request(first, max_tokens=2))
        await collect(engine, request(second, max_tokens=2))  # parks the first
        assert (await details(engine))["prefix_cache_entries"] == 1
        now[0] += 61  # older than the bound: the idle engine drops it
        for _ in range(300):
            if (await details(engine))["prefix_cache_entries"] == 0:
                break
            await asyncio.sleep(0.1)
        assert (await details(engine))["prefix_cache_entries"] == 0
        again, _ = await collect(engine, request(first, max_tokens=1))
        assert again[0].cached_tokens < 16
    finally:
        await engine.close()
