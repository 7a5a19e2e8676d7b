"""Memory and single-stream decode speed of a GGUF on this CPU (the README's
"what to expect" figures): RSS before and after loading, and decode tokens/s
of 256-token generations after the first token.

    .venv/bin/python -u bench/model_footprint.py [--model REF] [--n-ctx 16384] [--runs 3]

REF is anything ``engines.<name>.model`` takes (a path, a package, hf://…);
default: the embedded SmolLM2-135M.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from moonbase.engines.base import (
    ChatTurn,
    ChoiceFinished,
    GenerationRequest,
    SamplingParams,
    TextDelta,
)
from moonbase.engines.llamacpp.engine import LlamaCppEngine
from moonbase.settings import EngineSettings

PROMPT = "Write a long story about a lighthouse keeper and the sea, with many details."


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def main(args: argparse.Namespace) -> None:
    print(f"before load: {rss_mb():.0f} MB")
    settings = EngineSettings(model=args.model, n_ctx=args.n_ctx, n_threads=args.threads)
    engine = LlamaCppEngine(settings)
    print(f"{engine.model_path}: after load {rss_mb():.0f} MB (n_ctx {args.n_ctx})")
    prompt = await engine.render_prompt([ChatTurn("user", PROMPT)])
    for run in range(args.runs):
        request = GenerationRequest(
            f"footprint-{run}", prompt, 256, SamplingParams(temperature=0.7, seed=run)
        )
        first = end = 0.0
        tokens = 0
        async for event in engine.generate(request):
            if isinstance(event, TextDelta) and not first:
                first = time.perf_counter()
            if isinstance(event, ChoiceFinished):
                end, tokens = time.perf_counter(), event.completion_tokens
        print(f"run {run}: {tokens} tokens, decode {(tokens - 1) / (end - first):.1f} tok/s")
    print(f"after generation: {rss_mb():.0f} MB")
    await engine.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--n-ctx", type=int, default=16384)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
