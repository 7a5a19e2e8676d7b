"""A moonbase gateway in front of another moonbase (embedded engine) as its upstream.

The upstream is a real OpenAI-compatible server on another port; the gateway
reaches it through the upstream engine (flavour ``moonshot``: the upstream
speaks Moonshot). Answers, usage and token counts must pass through unchanged,
and a dead or dying upstream must end in a clean error, never a hang.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.e2e.server import RunningServer, free_port, openai_client, start_server

ASK = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def gateway_config(path: Path, urls: list[str], api_key: str) -> dict[str, str]:
    quoted = ", ".join(f'"{url}"' for url in urls)
    path.write_text(
        'default_engine = "kimi"\n'
        "[engines.kimi]\n"
        'kind = "upstream"\n'
        'flavour = "moonshot"\n'
        f"urls = [{quoted}]\n"
        f'api_key = "{api_key}"\n'
        "health_interval_s = 0.5\n"
        "read_timeout_s = 300\n"
    )
    return {"MOONBASE_CONFIG": str(path)}


def client_of(server: RunningServer) -> openai.OpenAI:
    return openai_client(f"{server.base_url}/v1", server.api_key)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("upstream"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream) -> Iterator[RunningServer]:
    """Two replicas: the live upstream and a port nobody listens on."""
    folder = tmp_path_factory.mktemp("gateway")
    dead = f"http://127.0.0.1:{free_port()}/v1"
    env = gateway_config(
        folder / "moonbase.toml", [dead, f"{upstream.base_url}/v1"], upstream.api_key
    )
    running = start_server(folder, env)
    yield running
    running.stop()


def test_answers_and_usage_pass_through(gateway, upstream):
    direct = client_of(upstream).chat.completions.create(
        model="moonshot-v1-8k", messages=ASK, max_tokens=30, temperature=0
    )
    via = client_of(gateway).chat.completions.create(
        model="moonshot-v1-8k", messages=ASK, max_tokens=30, temperature=0
    )
    assert via.choices[0].message.content == direct.choices[0].message.content
    assert via.usage.prompt_tokens == direct.usage.prompt_tokens
    assert via.usage.completion_tokens == direct.usage.completion_tokens
    assert via.model == "moonshot-v1-8k"


def test_streaming_passes_through_with_final_usage(gateway):
    client = client_of(gateway)
    plain = client.chat.completions.create(
        model="moonshot-v1-8k", messages=ASK, max_tokens=30, temperature=0
    )
    chunks = list(
        client.chat.completions.create(
            model="moonshot-v1-8k",
            messages=ASK,
            max_tokens=30,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish[-1].choices[0].model_extra["usage"]["prompt_tokens"] == plain.usage.prompt_tokens


def test_tool_calls_pass_through_with_kimi_ids(gateway):
    for stream in (False, True):
        request = dict(
            model="kimi-k2-0905-preview",
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[WEATHER],
            tool_choice="required",
            max_tokens=60,
        )
        if stream:
            calls = {}
            for chunk in client_of(gateway).chat.completions.create(**request, stream=True):
                for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
                    calls[delta.index] = delta
            call = calls[0]
        else:
            reply = client_of(gateway).chat.completions.create(**request)
            assert reply.choices[0].finish_reason == "tool_calls"
            call = reply.choices[0].message.tool_calls[0]
        assert call.id == "functions.get_weather:0"
        assert call.function.name == "get_weather"
        assert "city" in call.function.arguments


def test_thinking_passes_through_as_reasoning_content(gateway):
    reply = client_of(gateway).chat.completions.create(
        model="kimi-k2.6",
        messages=[{"role": "user", "content": "Is 17 a prime number?"}],
        max_tokens=120,
        extra_body={"thinking": {"type": "enabled"}},
    )
    assert (reply.choices[0].message.model_extra or {}).get("reasoning_content")
    plain = client_of(gateway).chat.completions.create(
        model="kimi-k2.6",
        messages=[{"role": "user", "content": "Is 17 a prime number?"}],
        max_tokens=60,
        extra_body={"thinking": {"type": "disabled"}},
    )
    assert "reasoning_content" not in (plain.choices[0].message.model_extra or {})


def test_token_counts_come_from_the_upstream(gateway, upstream):
    def count(server: RunningServer) -> int:
        response = httpx.post(
            f"{server.base_url}/v1/tokenizers/estimate-token-count",
            headers={"authorization": f"Bearer {server.api_key}"},
            json={"model": "moonshot-v1-8k", "messages": ASK},
        )
        return int(response.json()["data"]["total_tokens"])

    assert count(gateway) == count(upstream) > 5


def test_the_gateway_bills_and_records_what_the_upstream_reports(gateway):
    reply = client_of(gateway).chat.completions.with_raw_response.create(
        model="moonshot-v1-8k", messages=ASK, max_tokens=20
    )
    request_id = reply.headers["x-request-id"]
    usage = reply.parse().usage
    row = None
    for _ in range(100):  # the charge commits just after the reply
        with sqlite3.connect(gateway.data_dir / "moonbase.db") as db:
            row = db.execute(
                "SELECT prompt_tokens, completion_tokens, cost_micro FROM usage_records "
                "WHERE request_id = ?",
                (request_id,),
            ).fetchone()
        if row is not None:
            break
        time.sleep(0.05)
    assert row is not None
    prompt, completion, cost = row
    assert (prompt, completion) == (usage.prompt_tokens, usage.completion_tokens)
    assert cost > 0


def test_the_refusing_replica_is_reported_unhealthy(gateway):
    health = httpx.get(f"{gateway.base_url}/health").json()
    replicas = health["engines"]["kimi"]["replicas"]
    assert sorted(r["healthy"] for r in replicas) == [False, True]


def test_all_replicas_down_is_a_quick_503(tmp_path: Path):
    urls = [f"http://127.0.0.1:{free_port()}/v1", f"http://127.0.0.1:{free_port()}/v1"]
    gateway = start_server(tmp_path, gateway_config(tmp_path / "moonbase.toml", urls, "sk-x"))
    try:
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(openai.InternalServerError) as refused:
                client_of(gateway).chat.completions.create(
                    model="moonshot-v1-8k", messages=ASK, max_tokens=5
                )
            # quick: no replica is tried, far below the 300 s read timeout
            assert time.monotonic() - started < 30
            assert refused.value.status_code == 503
            assert refused.value.response.headers["retry-after"]
    finally:
        gateway.stop()


def test_an_upstream_killed_mid_stream_ends_the_stream_with_an_error(tmp_path: Path):
    upstream = start_server(tmp_path / "victim")
    gateway = start_server(
        tmp_path / "gateway",
        gateway_config(tmp_path / "moonbase.toml", [f"{upstream.base_url}/v1"], upstream.api_key),
    )
    try:
        stream = client_of(gateway).chat.completions.create(
            model="moonshot-v1-8k",
            messages=[{"role": "user", "content": "Write a very long story about a dragon."}],
            max_tokens=600,
            stream=True,
        )
        started = time.monotonic()
        received = ""
        with pytest.raises(openai.APIError) as failed:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    received += chunk.choices[0].delta.content
                    if upstream.process.poll() is None:
                        upstream.process.send_signal(signal.SIGKILL)
        assert received
        assert time.monotonic() - started < 60  # far below the 300 s read timeout
        assert "failed mid-response" in str(failed.value)
    finally:
        gateway.stop()
        upstream.stop()
