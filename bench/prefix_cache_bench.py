"""Prefix cache bound: hit rate, cold-prompt speed and memory, per bound.

The embedded engine in-process (4 slots, 16k cells, 2 threads), driven with
conversations that each carry a document in their system message and take
turns round-robin, more conversations than slots, so follow-ups find their
prefix parked in host memory or not at all. For each ``prefix_cache_mb``
bound it reports the share of prompt tokens served from cache, the median
TTFT of follow-ups and of cold prompts, and the memory the cache held.

    .venv/bin/python bench/prefix_cache_bench.py
    .venv/bin/python bench/prefix_cache_bench.py --conversations 8 --turns 3 --bounds 0 64 256
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moonbase.engines.base import (  # noqa: E402
    ChatTurn,
    GenerationRequest,
    PromptProcessed,
    SamplingParams,
    TextDelta,
)
from moonbase.engines.llamacpp.engine import LlamaCppEngine  # noqa: E402
from moonbase.settings import EngineSettings  # noqa: E402

SENTENCE = "The archive keeps records of ships, harbours, storms and the people who sailed. "
QUESTIONS = ["Which storms does it mention?", "Who sailed?", "Name one harbour.", "And ships?"]


async def turn(engine: LlamaCppEngine, turns: list[ChatTurn]) -> tuple[float, int, int, str]:
    """TTFT, prompt tokens and cached tokens of one turn, and its reply."""
    prompt = await engine.render_prompt(turns)
    request = GenerationRequest(
        request_id="bench",
        prompt_tokens=prompt,
        max_tokens=8,
        sampling=SamplingParams(temperature=0.0),
    )
    started = time.perf_counter()
    ttft, cached, reply = None, 0, ""
    async for event in engine.generate(request):
        if isinstance(event, PromptProcessed):
            cached = event.cached_tokens
        elif isinstance(event, TextDelta):
            ttft = ttft if ttft is not None else time.perf_counter() - started
            reply += event.text
    return (ttft or time.perf_counter() - started), len(prompt), cached, reply


async def run_bound(args: argparse.Namespace, mb: int) -> tuple[str, ...]:
    engine = await asyncio.to_thread(
        LlamaCppEngine,
        EngineSettings(slots=args.slots, n_ctx=16384, n_threads=args.threads, prefix_cache_mb=mb),
    )
    try:
        chats = [
            [
                ChatTurn(
                    "system",
                    f"Session {secrets.token_hex(8)}. " + SENTENCE * (args.document_tokens // 16),
                ),
                ChatTurn("user", "Summarise the archive in one line."),
            ]
            for _ in range(args.conversations)
        ]
        cold, follow_ups = [], []
        prompt_total = cached_total = 0
        largest_bytes = 0
        for round_no in range(args.turns):
            for chat in chats:
                ttft, prompt, cached, reply = await turn(engine, chat)
                (cold if round_no == 0 else follow_ups).append(ttft)
                if round_no:
                    prompt_total += prompt
                    cached_total += cached
                chat += [ChatTurn("assistant", reply), ChatTurn("user", QUESTIONS[round_no % 4])]
                details = (await engine.health()).details
                largest_bytes = max(largest_bytes, details["prefix_cache_bytes"])
        return (
            f"{mb:,} MB",
            f"{cached_total / prompt_total:.0%}",
            f"{statistics.median(follow_ups):.3f} s",
            f"{statistics.median(cold):.3f} s",
            f"{largest_bytes / 2**20:.0f} MB",
        )
    finally:
        await engine.close()


async def main(args: argparse.Namespace) -> None:
    rows = [await run_bound(args, mb) for mb in args.bounds]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
    print(
        f"{args.conversations} conversations with a ~{args.document_tokens:,}-token document, "
        f"{args.turns} turns each round-robin, {args.slots} slots, {args.threads} threads\n"
    )
    print(
        "| prefix_cache_mb | follow-up tokens from cache | follow-up TTFT p50 "
        "| cold TTFT p50 | cache held at most |"
    )
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=8)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--document-tokens", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--bounds", type=int, nargs="+", default=[0, 64, 128, 256, 1024])
    asyncio.run(main(parser.parse_args()))
