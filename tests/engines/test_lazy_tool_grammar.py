"""Tool calls under tool_choice "auto" on the embedded engine: free text until
the model begins ``<tool_call``, then a lazy grammar holds the call to the
declared tools and their schemas (llama.cpp's lazy grammar sampler)."""

from __future__ import annotations

import asyncio
import ctypes
import json
import re
from collections.abc import AsyncIterator, Iterator

import jsonschema
import llama_cpp
import pytest
from llama_cpp import _internals

from moonbase.chat.tool_formats import LLAMA3, MISTRAL, MISTRAL_ARGS
from moonbase.chat.tools import ToolPlan, calls_constraint, parse_reply, system_block
from moonbase.engines.base import ChatTurn, GenerationRequest, SamplingParams, TextDelta
from moonbase.engines.llamacpp.engine import LlamaCppEngine
from moonbase.engines.llamacpp.grammar import grammar_for
from moonbase.engines.llamacpp.json_grammar import JsonBounds
from moonbase.engines.llamacpp.model_file import default_model_path
from moonbase.engines.llamacpp.sampler import compile_grammar
from moonbase.schemas.chat import ToolDefinition
from moonbase.settings import EngineSettings

# An enum value no model writes by chance: a call that has it was constrained.
WEATHER = ToolDefinition.model_validate(
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather of a city for some days",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "enum": ["PARIS_FR", "OSLO_NO", "ROME_IT"]},
                    "days": {"type": "integer", "minimum": 1, "maximum": 7},
                },
                "required": ["city", "days"],
            },
        },
    }
)
AUTO = ToolPlan([WEATHER], forced=False, first_call_index=0)


@pytest.fixture(scope="module")
def model() -> Iterator[_internals.LlamaModel]:
    loaded = _internals.LlamaModel(
        path_model=str(default_model_path()),
        params=llama_cpp.llama_model_default_params(),
        verbose=False,
    )
    yield loaded
    loaded.close()


def allowed_pieces(sampler: object, model: _internals.LlamaModel) -> list[bytes]:
    """The pieces of every vocabulary token the sampler leaves possible."""
    n_vocab = llama_cpp.llama_vocab_n_tokens(model.vocab)
    data = (llama_cpp.llama_token_data * n_vocab)(
        *(llama_cpp.llama_token_data(token, 0.0, 0.0) for token in range(n_vocab))
    )
    candidates = llama_cpp.llama_token_data_array(data, n_vocab, -1, False)
    llama_cpp.llama_sampler_apply(sampler, ctypes.byref(candidates))
    return [
        model.token_get_text(data[i].id).encode()
        for i in range(candidates.size)
        if data[i].logit != float("-inf")
    ]


def accept(sampler: object, model: _internals.LlamaModel, text: str) -> None:
    for token in model.tokenize(text.encode(), add_bos=False, special=False):
        llama_cpp.llama_sampler_accept(sampler, token)


def test_the_grammar_waits_for_the_tag_then_holds_the_call(model: _internals.LlamaModel):
    grammar = grammar_for(calls_constraint(AUTO), JsonBounds())
    sampler = compile_grammar(model.vocab, grammar)
    try:
        n_vocab = llama_cpp.llama_vocab_n_tokens(model.vocab)
        accept(sampler, model, "Let me look that up for you. ")
        assert len(allowed_pieces(sampler, model)) == n_vocab  # free text: nothing masked
        accept(sampler, model, "<tool_call")
        after_tag = allowed_pieces(sampler, model)
        assert after_tag and all(piece.startswith(b">") for piece in after_tag)
        accept(sampler, model, '>{"name": "get_weather", "arguments": {"city": "')
        in_enum = {piece.decode(errors="replace") for piece in allowed_pieces(sampler, model)}
        assert in_enum and all(
            any(
                city.startswith(p) or p.startswith(city)
                for city in ("PARIS_FR", "OSLO_NO", "ROME_IT")
            )
            for p in in_enum
        ), sorted(in_enum)[:20]
    finally:
        llama_cpp.llama_sampler_free(sampler)


def test_a_tag_that_is_not_a_call_stays_free_text(model: _internals.LlamaModel):
    grammar = grammar_for(calls_constraint(AUTO), JsonBounds())
    sampler = compile_grammar(model.vocab, grammar)
    try:
        accept(sampler, model, "<tool_response>sunny</tool_response> and <tools> too")
        n_vocab = llama_cpp.llama_vocab_n_tokens(model.vocab)
        assert len(allowed_pieces(sampler, model)) == n_vocab
    finally:
        llama_cpp.llama_sampler_free(sampler)


def test_the_trigger_only_matches_text_the_grammar_accepts():
    grammar = grammar_for(calls_constraint(AUTO), JsonBounds())
    (trigger,) = grammar.triggers
    matches = ["<tool_call", "x <tool_call>", "<tool_call>{", "<tool_call>\n{", "<tool_call> {"]
    misses = ["<tool_call>(", "<tool_call>{x", "<tool_calls", "<tool_call>  {", "<tool"]
    assert all(re.search(trigger, text) for text in matches)
    assert not any(re.search(trigger, text) for text in misses)


def test_mistral_calls_are_held_after_the_tag(model: _internals.LlamaModel):
    plan = ToolPlan([WEATHER], False, 0, {}, 3, MISTRAL)
    grammar = grammar_for(calls_constraint(plan), JsonBounds())
    sampler = compile_grammar(model.vocab, grammar)
    try:
        n_vocab = llama_cpp.llama_vocab_n_tokens(model.vocab)
        accept(sampler, model, "Checking. ")
        assert len(allowed_pieces(sampler, model)) == n_vocab
        accept(sampler, model, "[TOOL_CALLS]")
        # Byte-level BPE pieces: Ġ is a space, Ċ a newline.
        after = [
            p.replace("Ġ".encode(), b" ").replace("Ċ".encode(), b"\n")
            for p in allowed_pieces(sampler, model)
        ]
        assert after and all(
            p.strip(b" \n") in (b"", b"[") or p.lstrip().startswith(b"[{") for p in after
        )
        accept(sampler, model, '[{"name": "get_weather", "arguments": {"city": "')
        cities = {p.decode(errors="replace") for p in allowed_pieces(sampler, model)}
        assert cities and all(
            any(c.startswith(p) or p.startswith(c) for c in ("PARIS_FR", "OSLO_NO", "ROME_IT"))
            for p in cities
        )
    finally:
        llama_cpp.llama_sampler_free(sampler)


def test_llama_calls_are_held_only_when_the_reply_begins_with_one(model: _internals.LlamaModel):
    plan = ToolPlan([WEATHER], False, 0, {}, 1, LLAMA3)
    grammar = grammar_for(calls_constraint(plan), JsonBounds())
    n_vocab = llama_cpp.llama_vocab_n_tokens(model.vocab)
    sampler = compile_grammar(model.vocab, grammar)
    try:
        accept(sampler, model, '{"')
        after = allowed_pieces(sampler, model)
        assert after and all(
            "name".startswith(p.decode()) or p.decode().startswith("name") for p in after
        ), sorted(after)[:20]
        accept(sampler, model, 'name": "get_weather", "parameters": {"city": "')
        cities = {p.decode(errors="replace") for p in allowed_pieces(sampler, model)}
        assert cities and all(
            any(c.startswith(p) or p.startswith(c) for c in ("PARIS_FR", "OSLO_NO", "ROME_IT"))
            for p in cities
        )
    finally:
        llama_cpp.llama_sampler_free(sampler)
    sampler = compile_grammar(model.vocab, grammar)
    try:  # braces later in a plain answer are text
        accept(sampler, model, 'Use {"name": x} here')
        assert len(allowed_pieces(sampler, model)) == n_vocab
    finally:
        llama_cpp.llama_sampler_free(sampler)


def test_the_llama_trigger_is_anchored_at_the_start():
    plan = ToolPlan([WEATHER], False, 0, {}, 1, LLAMA3)
    (trigger,) = grammar_for(calls_constraint(plan), JsonBounds()).triggers
    matches = ["{", ' {"', '{"na', '{"name"', '{"name": ', '<|python_tag|>{"name', "\n{ "]
    misses = ['x {"name"', '{"type"', '{"name": "', '{  "name"', "<|python_tag|>"]
    assert all(re.fullmatch(trigger, text) for text in matches)
    assert not any(re.fullmatch(trigger, text) for text in misses)


def test_mistral_args_calls_are_parsed_but_not_constrained():
    plan = ToolPlan([WEATHER], False, 0, {}, 3, MISTRAL_ARGS)
    assert calls_constraint(plan) is None


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[LlamaCppEngine]:
    running = await asyncio.to_thread(LlamaCppEngine, EngineSettings(n_ctx=4096, slots=4))
    yield running
    await running.close()


# Two earlier turns in which the assistant called the tool: an invitation a
# 135M model follows often enough to be measured.
FEW_SHOT = [
    ChatTurn("system", system_block([WEATHER])),
    ChatTurn("user", "Weather in Rome for 2 days?"),
    ChatTurn(
        "assistant",
        '<tool_call>{"name": "get_weather", "arguments": {"city": "ROME_IT", "days": 2}}'
        "</tool_call>",
    ),
    ChatTurn("user", "<tool_response>sunny</tool_response>"),
    ChatTurn("assistant", "It will be sunny in Rome."),
    ChatTurn("user", "Weather in Oslo for 5 days?"),
    ChatTurn(
        "assistant",
        '<tool_call>{"name": "get_weather", "arguments": {"city": "OSLO_NO", "days": 5}}'
        "</tool_call>",
    ),
    ChatTurn("user", "<tool_response>snow</tool_response>"),
    ChatTurn("assistant", "Snow in Oslo."),
    ChatTurn("user", "Weather in Paris for 3 days?"),
]


async def test_calls_the_model_writes_under_auto_validate(engine: LlamaCppEngine):
    prompt = await engine.render_prompt(FEW_SHOT)
    constraint = calls_constraint(AUTO)
    schema = WEATHER.function.parameters
    replies = []
    for seed in range(12):
        request = GenerationRequest(
            request_id=f"auto-{seed}",
            prompt_tokens=prompt,
            max_tokens=96,
            sampling=SamplingParams(temperature=0.3, seed=seed),
            constraint=constraint,
        )
        text = "".join(
            [event.text async for event in engine.generate(request) if isinstance(event, TextDelta)]
        )
        replies.append(text)
    calls = [call for text in replies for call in parse_reply(text, AUTO).calls]
    for call in calls:
        jsonschema.validate(json.loads(call["function"]["arguments"]), schema)
    # Every call the model began was finished under the grammar: none is left as text.
    begun = sum(text.count("<tool_call") for text in replies)
    print(f"{len(calls)} calls in {len(replies)} replies")
    assert calls and len(calls) == begun, replies
