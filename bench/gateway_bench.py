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

``--baseline DIR`` runs a second moonbase beside the first from another
checkout of the code (``git worktree add /tmp/old <rev>``; the same
virtualenv, its code first on PYTHONPATH), and ``--repeat N`` runs every
cell N times, the targets alternating, so old and new meet the machine in
the same state; the table then gives each target's median.

Every gateway cell also reports the gateway process's CPU time per request
(user + system, from /proc, over the cell's requests and its warm-up ones):
on a machine whose other load moves requests/s by ±25 % between runs, the
CPU a request costs moves far less, so it is the figure that compares two
builds.

    .venv/bin/python bench/gateway_bench.py --seconds 10
    .venv/bin/python bench/gateway_bench.py --skip-litellm   # moonbase only
    .venv/bin/python bench/gateway_bench.py --skip-litellm --baseline /tmp/old --repeat 5

Prints a markdown table: requests/s, p50/p99 latency, CPU ms per request,
latency added over the direct stub, moonbase's ratios to LiteLLM and to the
baseline, and the Anthropic path's to the OpenAI path.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def moonbase_command(code: Path | None) -> tuple[list[str], dict[str, str]]:
    """How to run moonbase: this checkout's, or the one at ``code`` (its
    package first on the path, in this virtualenv)."""
    if code is None:
        return [str(BIN / "moonbase")], dict(os.environ)
    # -P: not the working directory first on the path (that is this checkout).
    return [sys.executable, "-P", "-m", "moonbase"], {**os.environ, "PYTHONPATH": str(code)}


def moonbase_cli(data_dir: Path, config: Path, *args: str, code: Path | None = None) -> str:
    prefix, env = moonbase_command(code)
    command = [*prefix, *args, "--data-dir", str(data_dir), "--config", str(config)]
    return subprocess.run(
        command, check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


def prepare_moonbase(folder: Path, stub: str, code: Path | None = None) -> tuple[Path, Path, str]:
    """A config with the stub as its engine, and a data folder holding a
    funded account with limits out of the way and its key."""
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
    moonbase_cli(data, config, "accounts", "create", "bench", code=code)
    moonbase_cli(data, config, "accounts", "topup", "bench", "1000000", code=code)
    huge = "1000000000"
    limits = ["--concurrency", "100000", "--rpm", huge, "--tpm", huge, "--tpd", huge]
    moonbase_cli(data, config, "accounts", "limits", "bench", *limits, code=code)
    created = moonbase_cli(data, config, "keys", "create", "--account", "bench", code=code)
    return config, data, created.splitlines()[0]


def start_moonbase(
    folder: Path, stub: str, code: Path | None = None
) -> tuple[subprocess.Popen, str, str]:
    config, data, key = prepare_moonbase(folder, stub, code)
    port = free_port()
    serve, env = moonbase_command(code)
    process = subprocess.Popen(
        [*serve, "serve", "--config", str(config), "--data-dir", str(data), "--port", str(port)],
        env={**env, "MOONBASE_LOG_LEVEL": "warning"},
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


Target = tuple[str, str | None, str, int | None]  # url, key, path, the process to time


def load(target: Target, stream: bool, concurrency: int, seconds: float) -> dict:
    url, key, path, pid = target
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
    cpu_before = cpu_seconds(pid) if pid is not None else 0.0
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result = dict(json.loads(out))
    if pid is not None:  # the warm-up sends one request per connection
        served = result["requests"] + result["errors"] + concurrency
        result["cpu_ms"] = round((cpu_seconds(pid) - cpu_before) * 1000 / served, 3)
    return result


def median_cell(runs: list[dict]) -> dict:
    """The median of each figure over a cell's repeated runs (and their spread)."""
    cell = {name: statistics.median(run[name] for run in runs) for name in runs[0]}
    cell["rps_runs"] = [run["rps"] for run in runs]
    return cell


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--skip-anthropic", action="store_true")
    parser.add_argument("--baseline", type=Path, help="another checkout to run beside this one")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each cell (medians)")
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
            targets: dict[str, Target] = {
                "direct": (stub_url, None, chat, None),
                "moonbase": (moonbase_url, key, chat, moonbase.pid),
            }
            if args.baseline is not None:
                (folder / "baseline").mkdir()
                old, old_url, old_key = start_moonbase(folder / "baseline", stub_url, args.baseline)
                processes.append(old)
                targets["baseline"] = (old_url, old_key, chat, old.pid)
            if not args.skip_anthropic:
                targets["anthropic"] = (moonbase_url, key, messages, moonbase.pid)
            if not args.skip_litellm:
                litellm, litellm_url = start_litellm(folder, stub_url)
                processes.append(litellm)
                targets["litellm"] = (litellm_url, LITELLM_KEY, chat, litellm.pid)
            results = []
            for stream in (False, True):
                for concurrency in args.concurrency:
                    runs: dict[str, list[dict]] = {name: [] for name in targets}
                    for _ in range(args.repeat):
                        for name, target in targets.items():
                            runs[name].append(load(target, stream, concurrency, args.seconds))
                            print(
                                name,
                                "stream" if stream else "plain",
                                concurrency,
                                runs[name][-1],
                                file=sys.stderr,
                                flush=True,
                            )
                    row = {name: median_cell(cells) for name, cells in runs.items()}
                    results.append((stream, concurrency, row))
            print(report(results))
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)


def report(results: list[tuple[bool, int, dict[str, dict]]]) -> str:
    lines = [
        "| mode | clients | target | req/s | p50 ms | p99 ms | CPU ms/req | added p50 ms |"
        " req/s vs LiteLLM | added p50 vs LiteLLM | vs baseline: req/s, CPU/req |"
        " req/s vs OpenAI path |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for stream, concurrency, row in results:
        direct = row["direct"]
        for name, cell in row.items():
            added = cell["p50_ms"] - direct["p50_ms"]
            ratio_rps = ratio_added = ratio_openai = ratio_baseline = ""
            if name == "anthropic":
                ratio_openai = f"{cell['rps'] / row['moonbase']['rps']:.2f}x"
            if name == "moonbase" and "litellm" in row:
                litellm = row["litellm"]
                ratio_rps = f"{cell['rps'] / litellm['rps']:.1f}x"
                litellm_added = litellm["p50_ms"] - direct["p50_ms"]
                ratio_added = f"{added / litellm_added:.2f}x" if litellm_added > 0 else ""
            if name == "moonbase" and "baseline" in row:
                old = row["baseline"]
                ratio_baseline = (
                    f"{cell['rps'] / old['rps']:.2f}x, {cell['cpu_ms'] / old['cpu_ms']:.2f}x"
                )
            cpu = f"{cell['cpu_ms']:.3f}" if "cpu_ms" in cell else ""
            lines.append(
                f"| {'stream' if stream else 'plain'} | {concurrency} | {name} | {cell['rps']:.0f}"
                f" | {cell['p50_ms']:.2f} | {cell['p99_ms']:.2f} | {cpu}"
                f" | {'' if name == 'direct' else f'{added:.2f}'} | {ratio_rps} | {ratio_added}"
                f" | {ratio_baseline} | {ratio_openai} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
