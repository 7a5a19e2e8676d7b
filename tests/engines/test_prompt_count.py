"""Counting prompt tokens where an upstream cannot: a Hugging Face tokenizer
folder (exact), or an estimate fitted to the usage the upstream reports; and
dynamically loaded tools in what each flavour is sent."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from moonbase.engines.base import ChatTurn, estimate_tokens
from moonbase.engines.llamacpp.engine import LlamaCppEngine
from moonbase.engines.llamacpp.model_file import default_model_path
from moonbase.engines.upstream.flavours import request_body
from moonbase.engines.upstream.prompt_count import (
    HfPromptCounter,
    TemplateCalibration,
    TokenizerFolderError,
    shape_of,
)
from moonbase.settings import EngineSettings
from tests.engines.test_upstream_engine import call
from tests.hf_tokenizer_from_gguf import write_tokenizer_folder

CONVERSATIONS = [
    [{"role": "user", "content": "Say hi."}],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name 3 fruits!"},
    ],
    [
        {"role": "user", "content": "Count to 12, in English and in 中文."},
        {"role": "assistant", "content": "One, two … 十二."},
        {"role": "user", "content": "Now backwards: it's fine if you're slow."},
    ],
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tokenizer_folder(default_model_path(), tmp_path_factory.mktemp("tokenizer"))


async def test_a_tokenizer_folder_counts_as_the_model_itself_does(folder: Path):
    counter = HfPromptCounter(folder)
    engine = await asyncio.to_thread(LlamaCppEngine, EngineSettings(n_ctx=2048, slots=1))
    try:
        for messages in CONVERSATIONS:
            turns = [ChatTurn(m["role"], m["content"]) for m in messages]
            assert counter.count(messages, None) == len(await engine.render_prompt(turns))
    finally:
        await engine.close()


def test_a_folder_without_a_tokenizer_or_a_template_is_named(tmp_path: Path, folder: Path):
    with pytest.raises(TokenizerFolderError, match=r"tokenizer\.json"):
        HfPromptCounter(tmp_path)
    (tmp_path / "tokenizer.json").write_bytes((folder / "tokenizer.json").read_bytes())
    with pytest.raises(TokenizerFolderError, match="no chat template"):
        HfPromptCounter(tmp_path)
    (tmp_path / "chat_template.jinja").write_text("{{ messages[0]['content'] }}")
    assert HfPromptCounter(tmp_path).count([{"role": "user", "content": "hello"}], None) == 1


def test_the_calibration_learns_what_a_template_adds():
    """A template that adds 5 tokens a message, 3 for the generation prompt and
    a 20-token default system prompt when there is none."""

    def billed(messages: list[dict]) -> int:
        content = estimate_tokens(messages) - 4 * len(messages)
        return content + 5 * len(messages) + 3 + 20 * int(shape_of(messages)[4])

    rng = random.Random(7)
    calibration = TemplateCalibration()
    samples = []
    for _ in range(30):
        messages = [{"role": "user", "content": "word " * rng.randint(1, 200)}] * rng.randint(1, 6)
        if rng.random() < 0.5:
            messages = [{"role": "system", "content": "Be brief."}, *messages]
        samples.append(messages)
    plain = [abs(estimate_tokens(m) - billed(m)) / billed(m) for m in samples]
    for messages in samples:
        calibration.observe(messages, None, billed(messages))
    fitted = [abs(calibration.estimate(m, None) - billed(m)) / billed(m) for m in samples]
    assert max(plain) > 0.3  # the plain estimate misses the template
    assert max(fitted) < 0.05, fitted
    assert calibration.observations == 30


SEARCH = {"type": "function", "function": {"name": "search_docs", "parameters": {"type": "object"}}}
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object"}},
}


@pytest.mark.parametrize("flavour", ["vllm", "sglang", "llamacpp", "generic", "moonshot"])
def test_tools_a_system_message_loads_reach_each_flavour(flavour: str):
    messages = [
        {"role": "system", "content": "Docs.", "tools": [SEARCH]},
        {"role": "user", "content": "hi"},
    ]
    chat = call(stream=False, messages=messages, tools=[WEATHER])
    sent = request_body(chat, flavour, "served")
    if flavour == "moonshot":
        assert sent["messages"] == messages and sent["tools"] == [WEATHER]
    else:
        assert "tools" not in sent["messages"][0]
        assert sent["tools"] == [WEATHER, SEARCH]
    assert messages[0]["tools"] == [SEARCH]  # the client's body is not changed
