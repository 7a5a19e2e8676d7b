"""Issue 17 through an upstream: a gateway in front of a real moonbase serving
SmolLM2, with the ``generic`` flavour (a server that cannot count tokens and
takes tools at the request's level only) and with ``moonshot`` (which takes
the request as written).

- Tools a system message loads are called with valid arguments either way
  (merged into ``tools`` for generic, passed through for moonshot).
- Token estimates through a generic upstream: within 10 % of the prompt tokens
  it bills once its reported usage has calibrated the estimate (the plain
  estimate, which does not see the template, is off by up to 72 %), and exact
  with a tokenizer folder (built here from the model's own GGUF).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from moonbase.engines.llamacpp.model_file import default_model_path
from tests.contract_tools import SEARCH
from tests.e2e.server import RunningServer, openai_client, start_server
from tests.hf_tokenizer_from_gguf import write_tokenizer_folder

MODEL = "moonshot-v1-8k"


def gateway_config(path: Path, url: str, api_key: str, flavour: str, extra: str = "") -> dict:
    path.write_text(
        'default_engine = "up"\n'
        "[engines.up]\n"
        'kind = "upstream"\n'
        f'flavour = "{flavour}"\n'
        f'urls = ["{url}"]\n'
        f'api_key = "{api_key}"\n'
        "read_timeout_s = 600\n" + extra
    )
    return {"MOONBASE_CONFIG": str(path)}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("upstream"))
    yield running
    running.stop()


def _gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: RunningServer, flavour: str, extra: str = ""
) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp(f"gateway-{flavour}")
    env = gateway_config(
        folder / "moonbase.toml", f"{upstream.base_url}/v1", upstream.api_key, flavour, extra
    )
    running = start_server(folder, env)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def generic(tmp_path_factory, upstream) -> Iterator[RunningServer]:
    yield from _gateway(tmp_path_factory, upstream, "generic")


@pytest.fixture(scope="module")
def moonshot(tmp_path_factory, upstream) -> Iterator[RunningServer]:
    yield from _gateway(tmp_path_factory, upstream, "moonshot")


@pytest.fixture(scope="module")
def with_tokenizer(tmp_path_factory, upstream) -> Iterator[RunningServer]:
    folder = write_tokenizer_folder(default_model_path(), tmp_path_factory.mktemp("tokenizer"))
    yield from _gateway(tmp_path_factory, upstream, "generic", f'tokenizer = "{folder}"\n')


@pytest.mark.parametrize("flavour", ["generic", "moonshot"])
def test_a_tool_loaded_by_a_system_message_is_called_through_an_upstream(
    request: pytest.FixtureRequest, flavour: str
):
    gateway: RunningServer = request.getfixturevalue(flavour)
    client = openai_client(f"{gateway.base_url}/v1", gateway.api_key)
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You help with the docs.", "tools": [SEARCH]},  # type: ignore[misc]
            {"role": "user", "content": "Find what the docs say about rate limits."},
        ],
        tool_choice="required",
        max_tokens=256,
    )
    calls = reply.choices[0].message.tool_calls or []
    assert calls, reply
    for call in calls:
        assert call.function.name == "search_docs"
        assert call.id.startswith("functions.search_docs:")
        jsonschema.validate(json.loads(call.function.arguments), SEARCH["function"]["parameters"])


# Conversations the gateway's traffic teaches it with, and different ones it
# is measured on.
CALIBRATION = [
    [{"role": "user", "content": "Say hi."}],
    [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a fruit."}],
    [
        {"role": "system", "content": "You answer in English."},
        {"role": "user", "content": "Count to three."},
        {"role": "assistant", "content": "One, two, three."},
        {"role": "user", "content": "Now to five."},
    ],
    [
        {"role": "user", "content": "Tell me about the sea."},
        {"role": "assistant", "content": "The sea is large, salty and deep in places."},
        {"role": "user", "content": "And rivers?"},
    ],
    [{"role": "user", "content": "Summarise: " + "The archive keeps records of ships. " * 20}],
    [
        {"role": "system", "content": "Answer with one word."},
        {"role": "user", "content": "What colour is the sky on a clear day?"},
    ],
    [
        {"role": "system", "content": "You are a librarian. Be kind and precise."},
        {"role": "user", "content": "Recommend a book about the ocean."},
        {"role": "assistant", "content": "Try 'The Sea Around Us' by Rachel Carson."},
        {"role": "user", "content": "Something shorter?"},
    ],
    [
        {"role": "system", "content": "Read the notes and answer."},
        {"role": "user", "content": "Notes: " + "Storms close the harbour in winter. " * 12},
    ],
]
MEASURED = [
    [{"role": "user", "content": "Which planet is the largest?"}],
    [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello!"},
    ],
    [
        {"role": "user", "content": "Give me a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another one, please."},
    ],
    [
        {"role": "system", "content": "Use the document to answer."},
        {"role": "user", "content": "Document: " + "Harbours shelter boats from storms. " * 30},
    ],
]


def billed(gateway: RunningServer, messages: list[dict[str, Any]]) -> int:
    client = openai_client(f"{gateway.base_url}/v1", gateway.api_key)
    reply = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=1)  # type: ignore[arg-type]
    assert reply.usage is not None
    return reply.usage.prompt_tokens


def estimated(gateway: RunningServer, messages: list[dict[str, Any]]) -> int:
    response = httpx.post(
        f"{gateway.base_url}/v1/tokenizers/estimate-token-count",
        headers={"authorization": f"Bearer {gateway.api_key}"},
        json={"model": MODEL, "messages": messages},
        timeout=600,
    )
    assert response.status_code == 200, response.text
    return int(response.json()["data"]["total_tokens"])


def test_a_generic_upstreams_estimate_learns_its_template(generic: RunningServer):
    before = [estimated(generic, messages) for messages in MEASURED]
    for messages in CALIBRATION:
        billed(generic, messages)
    after = [estimated(generic, messages) for messages in MEASURED]
    truth = [billed(generic, messages) for messages in MEASURED]
    print("generic estimate before / after calibration / billed:", before, after, truth)
    errors = [abs(est - real) / real for est, real in zip(after, truth, strict=True)]
    plain = [abs(est - real) / real for est, real in zip(before, truth, strict=True)]
    # Measured: 3 %, 5 %, 6 %, 7 % (35 / 23 / 50 / 244 estimated for 36 / 22 / 53 /
    # 263 billed; plain 10 / 16 / 24 / 224). The 7 %: the document repeats
    # "Harbours", which this vocabulary splits in three, 30 times.
    assert max(errors) <= 0.10 and sum(errors) < sum(plain), (before, after, truth)


def test_a_tokenizer_folder_makes_the_estimate_exact(with_tokenizer: RunningServer):
    for messages in [*MEASURED, *CALIBRATION]:
        assert estimated(with_tokenizer, messages) == billed(with_tokenizer, messages), messages


def test_an_unusable_tokenizer_folder_stops_the_start(tmp_path: Path, upstream: RunningServer):
    env = gateway_config(
        tmp_path / "moonbase.toml",
        f"{upstream.base_url}/v1",
        upstream.api_key,
        "generic",
        f'tokenizer = "{tmp_path / "missing"}"\n',
    )
    with pytest.raises(RuntimeError) as failed:
        start_server(tmp_path, env).stop()
    assert "tokenizer.json" in str(failed.value)
