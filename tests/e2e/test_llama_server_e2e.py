"""llama.cpp's own llama-server as the upstream (flavour ``llamacpp``).

The binary is built from the llama.cpp source that the pinned
llama-cpp-python sdist vendors (bench/build_llama_server.sh: about 7 minutes
on 2 cores the first time, then cached under ~/.cache/moonbase-bench) and
serves the same SmolLM2 GGUF as the embedded engine. Its chat template is
SmolLM2's ChatML plus Kimi's ``thinking`` switch, so the translation of
Moonshot's ``thinking`` into chat-template kwargs is visible in the prompt.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from moonbase.engines.llamacpp.model_file import default_model_path
from tests.e2e.server import RunningServer, free_port, openai_client, start_server

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = Path(__file__).parent / "data" / "chatml_thinking.jinja"
ASK = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    built = subprocess.run(
        ["bash", str(ROOT / "bench" / "build_llama_server.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert built.returncode == 0, f"llama-server could not be built:\n{built.stderr[-3000:]}"
    binary = built.stdout.strip().splitlines()[-1]
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "log"
    process = subprocess.Popen(
        [
            binary,
            "-m",
            str(default_model_path()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "-c",
            "4096",
            "-np",
            "2",
            "--no-webui",
            "--jinja",
            "--chat-template-file",
            str(TEMPLATE),
            "--reasoning-format",
            "deepseek",
            "--seed",
            "0",
        ],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError(f"llama-server did not come up:\n{log.read_text()}")
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, llama_server: str) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("gateway-llama")
    config = folder / "moonbase.toml"
    config.write_text(
        'default_engine = "llama"\n'
        "[engines.llama]\n"
        'kind = "upstream"\n'
        'flavour = "llamacpp"\n'
        f'urls = ["{llama_server}/v1"]\n'
        'model = "smollm2"\n'
        "context_length = 4096\n"
    )
    running = start_server(folder, {"MOONBASE_CONFIG": str(config)})
    yield running
    running.stop()


def via(gateway: RunningServer) -> openai.OpenAI:
    return openai_client(f"{gateway.base_url}/v1", gateway.api_key)


def direct(llama_server: str) -> openai.OpenAI:
    return openai_client(f"{llama_server}/v1", "none")


def test_answers_and_usage_pass_through(gateway, llama_server):
    theirs = direct(llama_server).chat.completions.create(
        model="smollm2", messages=ASK, max_tokens=24, temperature=0
    )
    ours = via(gateway).chat.completions.create(
        model="moonshot-v1-8k", messages=ASK, max_tokens=24, temperature=0
    )
    assert ours.choices[0].message.content == theirs.choices[0].message.content
    assert ours.usage.prompt_tokens == theirs.usage.prompt_tokens
    assert ours.usage.completion_tokens == theirs.usage.completion_tokens
    assert ours.model == "moonshot-v1-8k" and ours.id.startswith("chatcmpl-")


def test_streaming_passes_through(gateway):
    client = via(gateway)
    plain = client.chat.completions.create(
        model="moonshot-v1-8k", messages=ASK, max_tokens=24, temperature=0
    )
    chunks = list(
        client.chat.completions.create(
            model="moonshot-v1-8k",
            messages=ASK,
            max_tokens=24,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_thinking_reaches_the_chat_template(gateway):
    def prompt_tokens(thinking: str) -> int:
        reply = via(gateway).chat.completions.create(
            model="kimi-k2.6",
            messages=ASK,
            max_tokens=4,
            extra_body={"thinking": {"type": thinking}},
        )
        return reply.usage.prompt_tokens

    # "<think>\n" opens the reply only when thinking is on.
    assert prompt_tokens("enabled") > prompt_tokens("disabled")


def test_token_counts_are_llama_servers_own(gateway, llama_server):
    response = httpx.post(
        f"{gateway.base_url}/v1/tokenizers/estimate-token-count",
        headers={"authorization": f"Bearer {gateway.api_key}"},
        json={"model": "moonshot-v1-8k", "messages": ASK},
    )
    counted = response.json()["data"]["total_tokens"]
    used = direct(llama_server).chat.completions.create(model="smollm2", messages=ASK, max_tokens=1)
    assert counted == used.usage.prompt_tokens


def test_cached_prompt_tokens_come_from_llama_servers_timings(gateway):
    long = [{"role": "user", "content": "Tell me about Paris. " * 30}]
    client = via(gateway)
    client.chat.completions.create(model="moonshot-v1-8k", messages=long, max_tokens=2)
    again = client.chat.completions.create(model="moonshot-v1-8k", messages=long, max_tokens=2)
    assert again.usage.prompt_tokens_details.cached_tokens > 100
    assert again.usage.model_extra["cached_tokens"] > 100  # Moonshot's own field too
