"""Gateway overhead: an instant stub upstream, directly, through moonbase and
through LiteLLM's proxy, side by side in one run on one machine.

moonbase runs as a user would run it (``moonbase serve``, SQLite, auth,
balance, rate limits, billing and usage records on) with the stub as a
``generic`` upstream engine; LiteLLM's proxy (``litellm[proxy]`` in its own
virtualenv, one worker) is configured on the same stub. Each cell is a
closed loop of N keep-alive connections for a fixed time (bench/loadgen.py).

The ``anthropic`` target is the same moonbase through its Anthropic Messages
endpoint (/anthropic/v1/messages, the same question and budget): its ratio to
the OpenAI path is the translation layer's cost.

    .venv/bin/python bench/gateway_bench.py --seconds 10
    .venv/bin/python bench/gateway_bench.py --skip-litellm   # moonbase only

Prints a markdown table: requests/s, p50/p99 latency, latency added over the
direct stub, moonbase's ratios to LiteLLM, and the Anthropic path's to the
OpenAI path.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CACHE = Path(os.environ.get("MOONBASE_BENCH_CACHE", Path.home() / ".cache" / "moonbase-bench"))
LITELLM_VENV = CACHE / "litellm-venv"
MODEL = "moonshot-v1-8k"
# The proxy refuses to start without a master key (it checks every request against it).
LITELLM_KEY = "sk-" + secrets.token_hex(32)
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def moonbase_cli(data_dir: Path, config: Path, *args: str) -> str:
    command = [str(BIN / "moonbase"), *args, "--data-dir", str(data_dir), "--config", str(config)]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def start_moonbase(folder: Path, stub: str) -> tuple[subprocess.Popen, str, str]:
    config = folder / "moonbase.toml"
    config.write_text(
        'default_engine = "stub"\n'
        "[engines.stub]\n"
        'kind = "upstream"\n'
        'flavour = "generic"\n'
        f'urls = ["{stub}/v1"]\n'
        'model = "stub"\n'
    )
    data = folder / "data"
    moonbase_cli(data, config, "accounts", "create", "bench")
    moonbase_cli(data, config, "accounts", "topup", "bench", "1000000")
    huge = "1000000000"
    moonbase_cli(
        data,
        config,
        "accounts",
        "limits",
        "bench",
        "--concurrency",
        "100000",
        "--rpm",
        huge,
        "--tpm",
        huge,
        "--tpd",
        huge,
    )
    key = moonbase_cli(data, config, "keys", "create", "--account", "bench").splitlines()[0]
    port = free_port()
    serve = os.environ.get("MOONBASE_BENCH_SERVE", str(BIN / "moonbase")).split()
    process = subprocess.Popen(
        [*serve, "serve", "--config", str(config), "--data-dir", str(data), "--port", str(port)],
        env={**os.environ, "MOONBASE_LOG_LEVEL": "warning"},
        stdout=(folder / "moonbase.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_up(f"{url}/health", process)
    return process, url, key


def start_litellm(folder: Path, stub: str) -> tuple[subprocess.Popen, str]:
    if not (LITELLM_VENV / "bin" / "litellm").exists():
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        pip = [str(LITELLM_VENV / "bin" / "pip"), "install", "--quiet", "litellm[proxy]"]
        subprocess.run(pip, check=True)
    config = folder / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        "      model: openai/stub\n"
        f"      api_base: {stub}/v1\n"
        "      api_key: sk-stub\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_KEY}\n"
    )
    port = free_port()
    process = subprocess.Popen(
        [
            str(LITELLM_VENV / "bin" / "litellm"),
            "--config",
            str(config),
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],
        env={**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"},
        stdout=(folder / "litellm.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_up(f"{url}/health/liveliness", process, timeout=300)
    return process, url


def load(
    target: tuple[str, str | None, str], stream: bool, concurrency: int, seconds: float
) -> dict:
    url, key, path = target
    # One body for both APIs: model, messages, max_tokens and stream mean the same.
    body = {"model": MODEL, "messages": QUESTION, "max_tokens": 16, "stream": stream}
    command = [
        sys.executable,
        str(ROOT / "bench" / "loadgen.py"),
        f"{url}{path}",
        json.dumps(body),
        str(concurrency),
        str(seconds),
    ]
    if key:
        command.append(key)
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--skip-litellm", action="store_true")
    args = parser.parse_args()
    processes: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        folder = Path(tmp)
        try:
            stub_port = free_port()
            stub = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "stub_upstream.py"), "--port", str(stub_port)]
            )
            processes.append(stub)
            stub_url = f"http://127.0.0.1:{stub_port}"
            wait_up(f"{stub_url}/v1/models", stub)
            moonbase, moonbase_url, key = start_moonbase(folder, stub_url)
            processes.append(moonbase)
            chat, messages = "/v1/chat/completions", "/anthropic/v1/messages"
            targets: dict[str, tuple[str, str | None, str]] = {
                "direct": (stub_url, None, chat),
                "moonbase": (moonbase_url, key, chat),
                "anthropic": (moonbase_url, key, messages),
            }
            if not args.skip_litellm:
                litellm, litellm_url = start_litellm(folder, stub_url)
                processes.append(litellm)
                targets["litellm"] = (litellm_url, LITELLM_KEY, chat)
            results = []
            for stream in (False, True):
                for concurrency in args.concurrency:
                    row: dict[str, dict] = {}
                    for name, target in targets.items():
                        row[name] = load(target, stream, concurrency, args.seconds)
                        print(
                            name,
                            "stream" if stream else "plain",
                            concurrency,
                            row[name],
                            file=sys.stderr,
                            flush=True,
                        )
                    results.append((stream, concurrency, row))
            print(report(results))
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)


def report(results: list[tuple[bool, int, dict[str, dict]]]) -> str:
    lines = [
        "| mode | clients | target | req/s | p50 ms | p99 ms | added p50 ms |"
        " req/s vs LiteLLM | added p50 vs LiteLLM | req/s vs OpenAI path |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for stream, concurrency, row in results:
        direct = row["direct"]
        for name, cell in row.items():
            added = cell["p50_ms"] - direct["p50_ms"]
            ratio_rps = ratio_added = ratio_openai = ""
            if name == "anthropic":
                ratio_openai = f"{cell['rps'] / row['moonbase']['rps']:.2f}x"
            if name == "moonbase" and "litellm" in row:
                litellm = row["litellm"]
                ratio_rps = f"{cell['rps'] / litellm['rps']:.1f}x"
                litellm_added = litellm["p50_ms"] - direct["p50_ms"]
                ratio_added = f"{added / litellm_added:.2f}x" if litellm_added > 0 else ""
            lines.append(
                f"| {'stream' if stream else 'plain'} | {concurrency} | {name} | {cell['rps']:.0f}"
                f" | {cell['p50_ms']:.2f} | {cell['p99_ms']:.2f}"
                f" | {'' if name == 'direct' else f'{added:.2f}'} | {ratio_rps} | {ratio_added}"
                f" | {ratio_openai} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
