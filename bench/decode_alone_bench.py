"""Single-stream decode rate of the embedded engine alone, in-process (no HTTP).

Separates the engine's own step from the serving path: run it with
PYTHONPATH pointing at two checkouts, alternating, to compare engine code.

    .venv/bin/python bench/decode_alone_bench.py LABEL
    PYTHONPATH=/path/to/other/checkout .venv/bin/python bench/decode_alone_bench.py other
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from moonbase.engines.base import ChatTurn, GenerationRequest, SamplingParams, TextDelta
from moonbase.engines.llamacpp.engine import LlamaCppEngine
from moonbase.settings import EngineSettings

RUNS = 6  # the first is a warm-up


async def main(label: str) -> None:
    settings = EngineSettings(slots=8, n_ctx=16384, n_threads=2)
    engine = await asyncio.to_thread(LlamaCppEngine, settings)
    rates = []
    try:
        for i in range(RUNS):
            turn = ChatTurn("user", f"Write a very long story about dragon number {i}.")
            request = GenerationRequest(
                request_id=f"alone-{i}",
                prompt_tokens=await engine.render_prompt([turn]),
                max_tokens=256,
                sampling=SamplingParams(temperature=0.0),
            )
            first: float | None = None
            counted = after_first = 0
            async for event in engine.generate(request):
                if isinstance(event, TextDelta) and event.tokens:
                    counted += event.tokens
                    if first is None:
                        first, after_first = time.perf_counter(), counted
            assert first is not None
            rates.append((counted - after_first) / (time.perf_counter() - first))
    finally:
        await engine.close()
    print(f"{label}: {statistics.median(rates[1:]):.1f} tok/s", [round(r, 1) for r in rates])


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "moonbase"))
