"""Instructions a gateway request costs, counted by valgrind's callgrind: a
figure that does not move with the machine's other load, for comparing two
builds of moonbase where requests/s on a shared 2-core machine moves by ±25 %
between runs of one build.

Each build (this checkout, and ``--baseline DIR``: another checkout run with
the same virtualenv, its code first on PYTHONPATH) is served by ``moonbase
serve`` under ``valgrind --tool=callgrind --instr-atstart=no`` in front of the
instant stub upstream (bench/stub_upstream.py, as in gateway_bench.py). After
a warm-up, the counts are zeroed and counting switched on (``callgrind_control
-z``, ``-i on``), N requests are sent one after another, and the counts are
dumped (``-d``) and counting switched off: the instructions of N requests
and nothing else (no start-up, no imports). The same is counted over a time
with no requests first, and that idle rate (the periodic tasks: the batch
worker's and the webhook outbox's polls, the spend-alert check, ...) times
the requests' duration is taken off: under valgrind a request lasts ~50
times longer, so those tasks would otherwise count as the request's work.

    .venv/bin/python bench/gateway_instructions.py --baseline /tmp/old --requests 200
    .venv/bin/python bench/gateway_instructions.py --code /tmp/new --baseline /tmp/old

Prints, per mode (plain, streamed), the instructions per request of each
build and their ratio. Slow: a build starts in a few minutes under valgrind.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.gateway_bench import (
    MODEL,
    QUESTION,
    ROOT,
    free_port,
    moonbase_command,
    prepare_moonbase,
    wait_up,
)


def callgrind(pid: int, *args: str) -> str:
    return subprocess.run(
        ["callgrind_control", *args, str(pid)], check=True, capture_output=True, text=True
    ).stdout


def ready(client: httpx.Client, url: str, key: str, timeout: float = 1800) -> None:
    """Wait for a first answer: under valgrind the engine's first health checks
    may time out and leave it ejected (503) for a while."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = {"model": MODEL, "messages": QUESTION, "max_tokens": 16}
        headers = {"authorization": f"Bearer {key}"}
        response = client.post(f"{url}/v1/chat/completions", json=body, headers=headers)
        if response.status_code == 200:
            return
        time.sleep(5)
    raise RuntimeError(f"{url} never answered a chat completion")


def send_and_commit(client: httpx.Client, url: str, key: str, stream: bool, count: int) -> None:
    send(client, url, key, stream, count)
    time.sleep(2)  # their charges commit inside the count


def send(client: httpx.Client, url: str, key: str, stream: bool, count: int) -> None:
    body = {"model": MODEL, "messages": QUESTION, "max_tokens": 16, "stream": stream}
    headers = {"authorization": f"Bearer {key}"}
    for _ in range(count):
        response = client.post(f"{url}/v1/chat/completions", json=body, headers=headers)
        response.raise_for_status()
        response.read()


def measure(
    folder: Path, stub: str, code: Path | None, requests: int, idle_s: float
) -> dict[str, float]:
    config, data, key = prepare_moonbase(folder, stub, code)
    port = free_port()
    _, env = moonbase_command(code)
    # The interpreter itself under valgrind (not the script that starts it);
    # -P: the working directory (this checkout) not first on the path.
    serve = [sys.executable, "-P", "-m", "moonbase"]
    out = folder / "callgrind.out"
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}.%p",
        *serve,
        "serve",
        "--config",
        str(config),
        "--data-dir",
        str(data),
        "--port",
        str(port),
    ]
    log = (folder / "moonbase.log").open("w")
    process = subprocess.Popen(
        command, env={**env, "MOONBASE_LOG_LEVEL": "warning"}, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    figures: dict[str, float] = {}
    try:
        wait_up(f"{url}/health", process, timeout=1800)
        with httpx.Client(timeout=600) as client:
            ready(client, url, key)
            for stream in (False, True):
                send(client, url, key, stream, 30)  # warm: caches, pools, lazy imports
                time.sleep(2)  # the group commit of the warm-up's charges
                mode = "stream" if stream else "plain"
                idle = counted(folder, process.pid, lambda: time.sleep(idle_s))
                figures[f"{mode} idle/s"] = idle / idle_s
                started = time.monotonic()
                total = counted(
                    folder,
                    process.pid,
                    partial(send_and_commit, client, url, key, stream, requests),
                )
                elapsed = time.monotonic() - started
                figures[f"{mode} raw"] = total / requests
                # Less what the periodic tasks spent meanwhile (the batch worker's
                # and the outbox's polls, ...): time-based work that valgrind's
                # slowness would otherwise charge to each request.
                figures[mode] = (total - idle / idle_s * elapsed) / requests
    finally:
        process.terminate()
        process.wait(timeout=120)
    return figures


def counted(folder: Path, pid: int, action: Callable[[], object]) -> int:
    """The instructions the process ran while ``action`` did."""
    callgrind(pid, "-z")
    callgrind(pid, "-i", "on")
    action()
    callgrind(pid, "-d")
    callgrind(pid, "-i", "off")
    _DUMPS[pid] = _DUMPS.get(pid, 0) + 1
    return _dumped_total(folder, pid, _DUMPS[pid])


_DUMPS: dict[int, int] = {}


def _dumped_total(folder: Path, pid: int, dumps: int) -> int:
    """The instructions (Ir) in the ``dumps``-th dump of process ``pid``."""
    dump = folder / f"callgrind.out.{pid}.{dumps}"
    for _ in range(600):  # valgrind writes it after answering the command
        if dump.exists():
            match = re.search(r"^totals:\s*(\d+)", dump.read_text(), re.MULTILINE)
            if match:
                return int(match.group(1))
        time.sleep(0.5)
    raise RuntimeError(f"no callgrind dump {dump}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", type=Path, help="another checkout to count beside this one")
    parser.add_argument(
        "--code", type=Path, help="count this checkout instead of the installed one (a worktree)"
    )
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--idle-seconds", type=float, default=30, help="how long the idle rate is counted"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gateway-instructions-") as tmp:
        folder = Path(tmp)
        stub_port = free_port()
        stub = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "stub_upstream.py"), "--port", str(stub_port)]
        )
        try:
            stub_url = f"http://127.0.0.1:{stub_port}"
            wait_up(f"{stub_url}/v1/models", stub)
            builds: dict[str, Path | None] = {"moonbase": args.code}
            if args.baseline is not None:
                builds["baseline"] = args.baseline
            results = {}
            for name, code in builds.items():
                (folder / name).mkdir()
                results[name] = measure(
                    folder / name, stub_url, code, args.requests, args.idle_seconds
                )
                print(name, json.dumps(results[name]), file=sys.stderr, flush=True)
        finally:
            stub.terminate()
            stub.wait(timeout=30)
    names = " | ".join(f"{name} instructions/request" for name in results)
    print(f"| mode | {names} | ratio |")
    print("|---|" + "---|" * (len(results) + 1))
    for mode in ("plain", "stream"):
        cells = [f"{results[name][mode] / 1e6:.2f} M" for name in results]
        ratio = ""
        if "baseline" in results:
            ratio = f"{results['moonbase'][mode] / results['baseline'][mode]:.3f}x"
        print(f"| {mode} | " + " | ".join(cells) + f" | {ratio} |")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
