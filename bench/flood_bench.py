"""A paying caller's latency while an unfunded account floods the platform.

One ``moonbase serve`` as a user runs it (embedded SmolLM2, SQLite). A paying
account sends short chats one after another; its p50 is measured alone, then
again while an account with no money floods ``/v1/chat/completions`` and
``/v1/tokenizers/estimate-token-count`` with large bodies (15,000-message
conversations, the shape that used to cost seconds of CPU each before the
429). Side by side in one run; the figure is the ratio of the two p50s.

    .venv/bin/python bench/flood_bench.py --requests 30 --flooders 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.gateway_bench import BIN, free_port, wait_up

MODEL = "moonshot-v1-8k"
ASK = [{"role": "user", "content": "What is the capital of France?"}]
FLOOD = [{"role": "user", "content": "word"}] * 15_000


def cli(data: Path, *args: str) -> str:
    command = [str(BIN / "moonbase"), *args, "--data-dir", str(data)]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def paying_latencies(url: str, key: str, requests: int) -> list[float]:
    times = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=300) as c:
        for _ in range(requests):
            started = time.perf_counter()
            response = c.post(
                "/v1/chat/completions",
                json={"model": MODEL, "messages": ASK, "max_tokens": 8, "temperature": 0},
            )
            response.raise_for_status()
            times.append(time.perf_counter() - started)
    return times


def flood(url: str, key: str, stop: threading.Event, counts: dict[int, int]) -> None:
    chat = json.dumps({"model": MODEL, "messages": FLOOD, "max_tokens": 8}).encode()
    count = json.dumps({"model": MODEL, "messages": FLOOD}).encode()
    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
    with httpx.Client(base_url=url, headers=headers, timeout=300) as client:
        while not stop.is_set():
            for path, body in (
                ("/v1/chat/completions", chat),
                ("/v1/tokenizers/estimate-token-count", count),
            ):
                status = client.post(path, content=body).status_code
                counts[status] = counts.get(status, 0) + 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--flooders", type=int, default=4)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data"
        cli(data, "accounts", "create", "payer")
        cli(data, "accounts", "topup", "payer", "1000")
        cli(data, "accounts", "limits", "payer", "--rpm", "100000", "--concurrency", "100")
        payer = cli(data, "keys", "create", "--account", "payer").splitlines()[0]
        flooder = cli(data, "keys", "create", "--account", "flooder").splitlines()[0]
        port = free_port()
        process = subprocess.Popen(
            [str(BIN / "moonbase"), "serve", "--data-dir", str(data), "--port", str(port)],
            stdout=(Path(folder) / "serve.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_up(f"{url}/health", process)
            paying_latencies(url, payer, 3)  # warm up
            alone = paying_latencies(url, payer, args.requests)
            stop, counts = threading.Event(), {}
            threads = [
                threading.Thread(target=flood, args=(url, flooder, stop, counts))
                for _ in range(args.flooders)
            ]
            for thread in threads:
                thread.start()
            time.sleep(1)
            flooded = paying_latencies(url, payer, args.requests)
            stop.set()
            for thread in threads:
                thread.join()
        finally:
            process.terminate()
            process.wait()
    p50_alone, p50_flooded = statistics.median(alone), statistics.median(flooded)
    print("| paying caller | p50 | p90 |")
    print("|---|---|---|")
    for name, times in (("alone", alone), (f"beside {args.flooders} flooders", flooded)):
        p90 = statistics.quantiles(times, n=10)[-1]
        print(f"| {name} | {p50_alone if times is alone else p50_flooded:.3f} s | {p90:.3f} s |")
    print(f"\nflooded / alone p50: {p50_flooded / p50_alone:.2f}x")
    print(f"flood responses by status: {dict(sorted(counts.items()))}")


if __name__ == "__main__":
    main()
