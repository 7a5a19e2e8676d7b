"""Where a streamed token's CPU goes: per thread of the server, and the client's.

One stream at a time (the single-stream decode scenario of engine_bench.py),
on moonbase and, with ``--llama-server``, on llama.cpp's llama-server beside
it. Every thread's user + system time is read from /proc before and after the
streams and divided by the tokens streamed, grouped by the thread's name (the
event loop is the process's main thread; llama.cpp's compute threads are the
scheduler thread and its unnamed workers). On a two-core machine every
millisecond of Python per token on the loop is taken from the decode threads,
so this is the figure that separates the engine alone from the engine served.

    .venv/bin/python bench/stream_cpu_bench.py --streams 6 --llama-server
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.engine_bench import (  # noqa: E402
    STORIES,
    Server,
    build_llama_server,
    start_llama_server,
    start_moonbase,
    stream_once,
    user,
)
from moonbase.engines.llamacpp.model_file import default_model_path  # noqa: E402

TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread name (threads of one name summed); the main thread is "loop"."""
    times: dict[str, float] = defaultdict(float)
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) * TICK_S  # utime, stime
        times["loop (main thread)" if task.name == str(pid) else name] += cpu
    return times


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(client: httpx.AsyncClient, server: Server, pid: int, streams: int, tokens: int):
    await stream_once(client, server, user(STORIES[0]), 16)  # warm-up
    before, client_before, started = thread_cpu(pid), client_cpu(), time.perf_counter()
    streamed = 0
    rates = []
    for i in range(streams):
        result = await stream_once(client, server, user(STORIES[i % len(STORIES)]), tokens)
        streamed += result.tokens
        rates.append(result.decode_rate)
    wall = time.perf_counter() - started
    after = thread_cpu(pid)
    per_token = {
        name: (after[name] - before.get(name, 0.0)) * 1000 / streamed
        for name in after
        if after[name] - before.get(name, 0.0) > 0
    }
    per_token["(client: this process)"] = (client_cpu() - client_before) * 1000 / streamed
    return sorted(rates)[len(rates) // 2], wall * 1000 / streamed, per_token


async def run(args: argparse.Namespace) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="moonbase-stream-cpu-"))
    servers: list[tuple[Server, int]] = []
    peer = None
    if args.llama_server:
        peer = start_llama_server(
            build_llama_server(),
            default_model_path(),
            args.threads,
            args.slots,
            args.n_ctx,
            data_dir / "llama-server.log",
        )
        assert peer.process is not None
        servers.append((peer, peer.process.pid))
    ours_proc, ours = start_moonbase(data_dir, args.threads, args.slots, args.n_ctx)
    servers.append((ours, ours_proc.process.pid))
    try:
        async with httpx.AsyncClient(
            timeout=600, limits=httpx.Limits(max_keepalive_connections=0)
        ) as client:
            for round_no in range(args.rounds):  # alternate, so drift hits both alike
                for server, pid in servers:
                    rate, wall_ms, per_token = await measure(
                        client, server, pid, args.streams, args.tokens
                    )
                    print(
                        f"\n{server.name}, round {round_no + 1}: median {rate:.1f} tok/s, "
                        f"{wall_ms:.2f} ms wall per token"
                    )
                    print("| thread | CPU ms per token |\n|---|---|")
                    for name, ms in sorted(per_token.items(), key=lambda kv: -kv[1]):
                        print(f"| {name} | {ms:.3f} |")
    finally:
        ours_proc.stop()
        if peer is not None and peer.process is not None:
            peer.process.terminate()
            peer.process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--n-ctx", type=int, default=16384)
    parser.add_argument("--llama-server", action="store_true", help="measure it beside moonbase")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
