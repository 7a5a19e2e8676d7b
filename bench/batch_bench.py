"""A 10,000-line batch against the engine's raw throughput (issue 7).

The engine is a stand-in with the shape of a real one: every request takes
``--latency`` seconds and at most ``--slots`` run at once (a GPU engine's
batch slots), so its raw throughput is about slots / latency requests a
second. Measured in one run: the engine driven directly at full occupancy,
then a batch of ``--lines`` lines through moonbase (upload, validation,
worker with ``concurrency = slots``, billing, results, output file) on SQLite.
Memory is the process's RSS, sampled while the batch runs.

    .venv/bin/python bench/batch_bench.py --lines 10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from moonbase.app import create_app
from moonbase.batches.worker import BatchWorker
from moonbase.engines.base import (
    ChatTurn,
    ChoiceFinished,
    EngineCapabilities,
    EngineEvent,
    EngineHealth,
    GenerationRequest,
    PromptProcessed,
    TextDelta,
)
from moonbase.settings import EMBEDDED_ENGINE, BatchSettings, Settings
from moonbase.store.database import Database
from tests.billing.accounts import funded_account


class SlotEngine:
    """Each request holds one of ``slots`` for ``latency`` seconds."""

    def __init__(self, slots: int, latency: float) -> None:
        self._slots = asyncio.Semaphore(slots)
        self._latency = latency
        self.capabilities = EngineCapabilities(context_length=8192, model_name="bench")

    async def render_prompt(
        self, turns: list[ChatTurn], assistant_prefix: str | None = None
    ) -> tuple[int, ...]:
        return tuple(range(sum(len(t.content) for t in turns) // 4 + 8))

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[EngineEvent, None]:
        async with self._slots:
            await asyncio.sleep(self._latency)
            yield PromptProcessed(len(request.prompt_tokens), 0)
            yield TextDelta(0, "ok", 1)
            yield ChoiceFinished(0, "stop", 1)

    async def health(self) -> EngineHealth:
        return EngineHealth(ready=True, active=0, details={"status": "ok"})

    async def close(self) -> None:
        return None


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def raw_throughput(engine: SlotEngine, requests: int, slots: int) -> float:
    async def one(n: int) -> None:
        request = GenerationRequest(request_id=f"raw-{n}", prompt_tokens=(1, 2, 3), max_tokens=4)
        async for _ in engine.generate(request):
            pass

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(requests)))
    return requests / (time.perf_counter() - started)


async def batch_throughput(
    lines: int, slots: int, latency: float, folder: Path, database_url: str | None
) -> dict[str, Any]:
    settings = Settings(
        data_dir=folder,
        database_url=database_url,
        batches=BatchSettings(run_worker=False, concurrency=slots, max_lines=lines),
    )
    db = Database(settings.resolved_database_url)
    await db.migrate()
    _, key = await funded_account(db, "bench", voucher="100000")
    engine = SlotEngine(slots, latency)
    app = create_app(settings, engines={EMBEDDED_ENGINE: engine}, db=db)
    headers = {"Authorization": f"Bearer {key}"}
    data = "".join(
        json.dumps(
            {
                "custom_id": f"r{n}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": "moonshot-v1-8k",
                    "messages": [{"role": "user", "content": f"Request number {n}"}],
                    "max_completion_tokens": 8,
                },
            }
        )
        + "\n"
        for n in range(lines)
    ).encode()
    samples: list[float] = []
    async with app.router.lifespan_context(app):
        services = app.state.services
        worker = BatchWorker(db, services.files, services.chat, services.billing, settings.batches)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://m") as http:
            uploaded = (
                await http.post(
                    "/v1/files",
                    headers=headers,
                    files={"file": ("in.jsonl", data)},
                    data={"purpose": "batch"},
                )
            ).json()
            del data
            batch_id = (
                await http.post(
                    "/v1/batches",
                    headers=headers,
                    json={
                        "input_file_id": uploaded["id"],
                        "endpoint": "/v1/chat/completions",
                        "completion_window": "24h",
                    },
                )
            ).json()["id"]
            started = time.perf_counter()

            async def sample() -> None:
                while True:
                    samples.append(rss_mb())
                    await asyncio.sleep(1)

            sampler = asyncio.create_task(sample())
            while await worker.step():
                pass
            total = time.perf_counter() - started
            sampler.cancel()
            batch = (await http.get(f"/v1/batches/{batch_id}", headers=headers)).json()
    await db.dispose()
    running = batch["completed_at"] - batch["in_progress_at"]
    return {
        "status": batch["status"],
        "counts": batch["request_counts"],
        "total_s": total,
        "validation_s": batch["in_progress_at"] - batch["created_at"],
        "running_s": running,
        "rss": samples,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    args = parser.parse_args(sys.argv[1:])
    raw = await raw_throughput(SlotEngine(args.slots, args.latency), 2_000, args.slots)
    with tempfile.TemporaryDirectory() as name:
        result = await batch_throughput(
            args.lines, args.slots, args.latency, Path(name), args.database_url
        )
    assert result["status"] == "completed", result
    processed = result["counts"]["completed"] / result["running_s"]
    overall = result["counts"]["completed"] / result["total_s"]
    rss = result["rss"]
    store = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"engine: {args.slots} slots x {args.latency * 1000:.0f} ms; lines: {args.lines}; {store}"
    )
    print("| measure | requests/s | / raw engine |")
    print("|---|---|---|")
    print(f"| engine driven directly ({args.slots} at once) | {raw:.1f} | 1.00x |")
    print(
        f"| batch, running (in_progress -> completed) | {processed:.1f} | {processed / raw:.2f}x |"
    )
    print(f"| batch, end to end (incl. validation) | {overall:.1f} | {overall / raw:.2f}x |")
    print(
        f"validation {result['validation_s']} s, running {result['running_s']} s; "
        "RSS at 10/25/50/75/100 % of the run: "
        + " / ".join(
            f"{rss[min(len(rss) - 1, int(len(rss) * q))]:.0f}" for q in (0.1, 0.25, 0.5, 0.75, 1.0)
        )
        + f" MB (peak {max(rss):.0f}, {len(rss)} samples, one a second)"
    )


if __name__ == "__main__":
    asyncio.run(main())
