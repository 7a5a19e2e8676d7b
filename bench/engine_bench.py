"""Embedded engine versus llama.cpp's own llama-server, side by side in one run.

Both serve the same GGUF with the same threads, slots and KV size, and get the
same prompts, max tokens and greedy sampling over the same OpenAI-compatible
streaming API. Each scenario runs on both servers back to back, round by round,
so the ratios compare like with like on a noisy machine; which server goes
first alternates, because a server measured right after the other one is not
measured like one right after itself (see docs/benchmarks.md, issue 16).

    .venv/bin/python bench/engine_bench.py                 # everything
    .venv/bin/python bench/engine_bench.py --skip-memory   # without the 1,000-request RSS run

Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from moonbase.engines.llamacpp.model_file import default_model_path  # noqa: E402
from tests.e2e.server import RunningServer, free_port, start_server  # noqa: E402

STORIES = [
    "Write a very long story about a dragon.",
    "Write a very long story about a lighthouse keeper.",
    "Write a very long story about a journey to the moon.",
    "Write a very long story about a clockmaker's apprentice.",
    "Write a very long story about a city under the sea.",
    "Write a very long story about a robot who learns to paint.",
    "Write a very long story about a forgotten library.",
    "Write a very long story about two rival chefs.",
]


@dataclass
class Result:
    ttft: float  # seconds to the first content token
    total: float  # seconds to the end of the stream
    tokens: int  # completion tokens
    longest_gap: float = 0.0  # seconds between two content chunks, at most

    @property
    def decode_rate(self) -> float:
        return (self.tokens - 1) / (self.total - self.ttft) if self.tokens > 1 else 0.0


@dataclass
class Server:
    name: str
    base_url: str
    model: str
    headers: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None


async def stream_once(
    client: httpx.AsyncClient,
    server: Server,
    messages: list[dict[str, str]],
    max_tokens: int,
    first_token: asyncio.Event | None = None,
) -> Result:
    body = {
        "model": server.model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    ttft = None
    tokens = 0
    chunks = 0
    last = longest_gap = 0.0
    async with client.stream(
        "POST", f"{server.base_url}/v1/chat/completions", json=body, headers=server.headers
    ) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or []:
                if (choice.get("delta") or {}).get("content"):
                    chunks += 1
                    now = time.perf_counter() - started
                    if ttft is None:
                        ttft = now
                        if first_token is not None:
                            first_token.set()
                    longest_gap = max(longest_gap, now - last)
                    last = now
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    total = time.perf_counter() - started
    return Result(
        ttft=ttft if ttft is not None else total,
        total=total,
        tokens=tokens or chunks,
        longest_gap=longest_gap,
    )


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def single_stream(client: httpx.AsyncClient, server: Server, runs: int, max_tokens: int):
    return [
        await stream_once(client, server, user(STORIES[i % len(STORIES)]), max_tokens)
        for i in range(runs)
    ]


async def concurrent(client: httpx.AsyncClient, server: Server, n: int, max_tokens: int):
    started = time.perf_counter()
    results = await asyncio.gather(
        *(
            stream_once(client, server, user(STORIES[i % len(STORIES)]), max_tokens)
            for i in range(n)
        )
    )
    wall = time.perf_counter() - started
    return results, sum(r.tokens for r in results) / wall


def long_system_prompt(nonce: str, approx_tokens: int = 1000) -> str:
    sentence = "The archive keeps records of ships, harbours, storms and the people who sailed. "
    repeats = approx_tokens // 16
    return f"Session {nonce}. " + sentence * repeats


def document_chat(approx_tokens: int) -> list[dict[str, str]]:
    """A document as a system message, as the file-extract flow sends it."""
    system = {"role": "system", "content": long_system_prompt(secrets.token_hex(8), approx_tokens)}
    return [system, {"role": "user", "content": "Summarise the archive in one line."}]


async def prefix_follow_up(client: httpx.AsyncClient, server: Server, approx_tokens: int):
    """TTFT of a cold document prompt, then of a follow-up turn sharing it."""
    first = document_chat(approx_tokens)
    cold = await stream_once(client, server, first, 8)
    follow = [
        *first,
        {"role": "assistant", "content": "It records ships and sailors."},
        {"role": "user", "content": "Which storms does it mention?"},
    ]
    return cold, await stream_once(client, server, follow, 8)


async def cold_after_busy_period(client: httpx.AsyncClient, server: Server) -> Result:
    """A cold ~1,000-token prompt right after eight streams have come and gone."""
    await concurrent(client, server, 8, 128)
    return await stream_once(client, server, document_chat(1000), 8)


async def document_beside_streams(client: httpx.AsyncClient, server: Server, approx_tokens: int):
    """A document prompt arriving while four streams decode: its TTFT, their longest stall."""
    started = [asyncio.Event() for _ in range(4)]
    streams = [
        asyncio.ensure_future(stream_once(client, server, user(STORIES[i]), 256, started[i]))
        for i in range(4)
    ]
    for event in started:
        await event.wait()
    document = await stream_once(client, server, document_chat(approx_tokens), 8)
    others = await asyncio.gather(*streams)
    return document, max(r.longest_gap for r in others)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def memory_soak(client: httpx.AsyncClient, server: Server, pid: int, requests: int):
    await single_stream(client, server, 20, 8)  # warm up allocators and caches
    before = rss_mb(pid)
    for i in range(requests):
        await stream_once(client, server, user(f"{STORIES[i % 8]} Number {i}."), 8)
    return before, rss_mb(pid)


async def parked_mb(client: httpx.AsyncClient, server: Server) -> float:
    """Host memory the embedded engine's prefix cache holds (it is bounded by settings)."""
    health = (await client.get(f"{server.base_url}/health")).json()
    return health["engines"]["embedded"]["prefix_cache_bytes"] / 2**20


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


Row = tuple[str, str, str, str]


def ratio_row(metric: str, values: dict[str, float], unit: str, higher_is_better: bool) -> Row:
    peer, ours = values["llama-server"], values["moonbase"]
    ratio = f"{ours / peer:.2f}x" if peer else "n/a"
    note = "" if higher_is_better else " (lower is better)"
    return (metric, f"{peer:.3f} {unit}", f"{ours:.3f} {unit}", ratio + note)


def in_turn(servers: list[Server], round_no: int) -> list[Server]:
    """The servers in the order of this round: each goes first every other round."""
    return servers if round_no % 2 == 0 else servers[::-1]


async def measure(client: httpx.AsyncClient, servers: list[Server], args: argparse.Namespace):
    """Every scenario alternates the servers round by round, so drift hits both alike."""
    rows: list[Row] = []
    names = [server.name for server in servers]
    decode: dict[str, list[float]] = {n: [] for n in names}
    alone128: dict[str, list[float]] = {n: [] for n in names}
    for i in range(args.runs):
        for server in in_turn(servers, i):
            result = await stream_once(client, server, user(STORIES[i % len(STORIES)]), 256)
            decode[server.name].append(result.decode_rate)
            result = await stream_once(client, server, user(STORIES[(i + 1) % 8]), 128)
            alone128[server.name].append(result.total)
    single = {n: statistics.median(v) for n, v in decode.items()}
    rows.append(ratio_row("single-stream decode", single, "tok/s", True))

    for n_streams in (4, 8):
        rates: dict[str, list[float]] = {n: [] for n in names}
        ttfts: dict[str, list[float]] = {n: [] for n in names}
        slowest: dict[str, list[float]] = {n: [] for n in names}
        for i in range(args.rounds):
            for server in in_turn(servers, i):
                results, rate = await concurrent(client, server, n_streams, 128)
                rates[server.name].append(rate)
                ttfts[server.name] += [r.ttft for r in results]
                slowest[server.name].append(max(r.ttft for r in results))
        aggregate = {n: statistics.median(v) for n, v in rates.items()}
        rows.append(ratio_row(f"aggregate decode, {n_streams} streams", aggregate, "tok/s", True))
        for q in (50, 99):
            rows.append(
                ratio_row(
                    f"TTFT p{q}, {n_streams} streams",
                    {n: percentile(v, q) for n, v in ttfts.items()},
                    "s",
                    False,
                )
            )
        if n_streams == 4:
            fairness = {
                n: statistics.median(slowest[n]) / statistics.median(alone128[n]) for n in names
            }
            rows.append(
                ratio_row(
                    "fairness: slowest TTFT of 4 / one 128-token request alone", fairness, "", False
                )
            )
        for name in names:
            rows.append(
                (
                    f"{name}: aggregate at {n_streams} / own single stream",
                    "",
                    "",
                    f"{aggregate[name] / single[name]:.2f}x",
                )
            )

    for approx in (1000, 4000):
        cold: dict[str, list[float]] = {n: [] for n in names}
        warm: dict[str, list[float]] = {n: [] for n in names}
        for i in range(args.rounds):
            for server in in_turn(servers, i):
                c, w = await prefix_follow_up(client, server, approx)
                cold[server.name].append(c.ttft)
                warm[server.name].append(w.ttft)
        cold_m = {n: statistics.median(v) for n, v in cold.items()}
        warm_m = {n: statistics.median(v) for n, v in warm.items()}
        rows.append(ratio_row(f"TTFT cold ~{approx:,}-token prompt", cold_m, "s", False))
        rows.append(
            ratio_row(f"TTFT follow-up sharing that prefix ({approx:,})", warm_m, "s", False)
        )
        for name in names:
            ratio = f"{warm_m[name] / cold_m[name]:.2f}x"
            rows.append((f"{name}: follow-up / cold TTFT at {approx:,}", "", "", ratio))

    after_busy: dict[str, list[float]] = {n: [] for n in names}
    for i in range(args.rounds):
        for server in in_turn(servers, i):
            after_busy[server.name].append((await cold_after_busy_period(client, server)).ttft)
    rows.append(
        ratio_row(
            "TTFT cold ~1,000-token prompt after a busy period (8 streams)",
            {n: statistics.median(v) for n, v in after_busy.items()},
            "s",
            False,
        )
    )

    beside_ttft: dict[str, list[float]] = {n: [] for n in names}
    beside_gap: dict[str, list[float]] = {n: [] for n in names}
    for i in range(args.rounds):
        for server in in_turn(servers, i):
            document, gap = await document_beside_streams(client, server, 4000)
            beside_ttft[server.name].append(document.ttft)
            beside_gap[server.name].append(gap)
    rows.append(
        ratio_row(
            "~4,000-token prompt beside 4 streams: its TTFT",
            {n: statistics.median(v) for n, v in beside_ttft.items()},
            "s",
            False,
        )
    )
    rows.append(
        ratio_row(
            "~4,000-token prompt beside 4 streams: their longest stall",
            {n: statistics.median(v) for n, v in beside_gap.items()},
            "s",
            False,
        )
    )
    return rows


def start_llama_server(
    binary: str, gguf: Path, threads: int, slots: int, n_ctx: int, log_path: Path
) -> Server:
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "-m",
            str(gguf),
            "-t",
            str(threads),
            "-tb",
            str(threads),
            "-c",
            str(n_ctx),
            "-np",
            str(slots),
            "-kvu",
            "-b",
            "512",
            "--no-webui",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(log_path, "wb"),
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return Server("llama-server", base, "default", process=process)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("llama-server did not start")


def start_moonbase(
    data_dir: Path, threads: int, slots: int, n_ctx: int
) -> tuple[RunningServer, Server]:
    """moonbase serving the embedded engine with llama-server's threads, slots and KV size."""
    process = start_server(
        data_dir,
        extra_env={
            "MOONBASE_ENGINES__EMBEDDED__SLOTS": str(slots),
            "MOONBASE_ENGINES__EMBEDDED__N_THREADS": str(threads),
            "MOONBASE_ENGINES__EMBEDDED__N_CTX": str(n_ctx),
        },
    )
    headers = {"Authorization": f"Bearer {process.api_key}"}
    return process, Server("moonbase", process.base_url, "moonshot-v1-8k", headers=headers)


def build_llama_server() -> str:
    out = subprocess.run(
        [str(ROOT / "bench" / "build_llama_server.sh")], check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


async def run(args: argparse.Namespace) -> None:
    gguf = default_model_path()
    binary = build_llama_server()
    data_dir = Path(tempfile.mkdtemp(prefix="moonbase-bench-"))
    peer = start_llama_server(
        binary, gguf, args.threads, args.slots, args.n_ctx, data_dir / "llama-server.log"
    )
    ours_proc, ours = start_moonbase(data_dir, args.threads, args.slots, args.n_ctx)
    servers = [peer, ours]
    rows: list[tuple[str, str, str, str]] = []

    try:
        # llama-server (cpp-httplib) closes a keep-alive connection after 5 idle
        # seconds or 100 requests, and a request sent as it closes fails with
        # "Server disconnected": every request gets its own connection, on both.
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=600, limits=limits) as client:
            for server in servers:  # warm-up: load pages, fill allocators
                await single_stream(client, server, 2, 16)
            rows += await measure(client, servers, args)
            if not args.skip_memory:  # the target is moonbase's own: no KV or sampler leak
                before, after = await memory_soak(
                    client, ours, ours_proc.process.pid, args.memory_requests
                )
                # Parked prefixes live in host memory too, up to prefix_cache_mb.
                parked = await parked_mb(client, ours)
                rows.append(
                    (
                        f"moonbase RSS over {args.memory_requests} sequential requests",
                        "",
                        f"{before:.1f} -> {after:.1f} MB (prefix cache holds {parked:.0f} MB)",
                        f"+{after - before:.1f} MB",
                    )
                )
    finally:
        ours_proc.stop()
        if peer.process:
            peer.process.terminate()
            peer.process.wait()

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
    print(
        f"model: {gguf.name}; threads {args.threads}; slots {args.slots}; "
        f"n_ctx {args.n_ctx}; greedy; rounds {args.rounds}\n"
    )
    print("| metric | llama-server | moonbase | moonbase / llama-server |")
    print("|---|---|---|---|")
    for metric, a, b, ratio in rows:
        print(f"| {metric} | {a} | {b} | {ratio} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--n-ctx", type=int, default=16384)
    parser.add_argument("--runs", type=int, default=3, help="single-stream requests")
    parser.add_argument("--rounds", type=int, default=3, help="repeats of each concurrent run")
    parser.add_argument("--memory-requests", type=int, default=1000)
    parser.add_argument("--skip-memory", action="store_true")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
