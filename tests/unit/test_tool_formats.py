"""Tool calls in the formats instruct families write, chosen from their chat
templates, parsed from whole replies and from the same replies streamed in
pieces (recorded-style outputs of Qwen2.5/Qwen3, Hermes 3, Llama 3.1/3.2,
Mistral Nemo and Mistral Small 3.2)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from moonbase.chat.templated import _with_tool_calls
from moonbase.chat.tool_formats import FORMATS, HERMES, LLAMA3, MISTRAL, MISTRAL_ARGS, detect
from moonbase.chat.tools import ToolPlan, parse_reply
from moonbase.engines.base import ChatEvent, ChoiceFinished, TextDelta, ToolCallsMade
from moonbase.engines.chat_template import ChatTemplate
from moonbase.schemas.chat import ToolDefinition
from tests.datafiles import chat_template


def tool(name: str, **properties: Any) -> ToolDefinition:
    return ToolDefinition.model_validate(
        {
            "type": "function",
            "function": {
                "name": name,
                "parameters": {"type": "object", "properties": properties},
            },
        }
    )


TOOLS = [
    tool("get_weather", city={"type": "string"}, days={"type": "integer"}),
    tool("get_time", zone={"type": "string"}),
]


def plan(fmt: str, first: int = 0, max_calls: int = 3) -> ToolPlan:
    return ToolPlan(TOOLS, False, first, {}, min(max_calls, FORMATS[fmt].max_calls), FORMATS[fmt])


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Qwen-Qwen2.5-7B-Instruct", "hermes"),
        ("Qwen-Qwen3-0.6B", "hermes"),
        ("NousResearch-Hermes-3-Llama-3.1-8B-tool_use", "hermes"),
        ("meta-llama-Llama-3.1-8B-Instruct", "llama3"),
        ("meta-llama-Llama-3.2-3B-Instruct", "llama3"),
        ("mistralai-Mistral-Nemo-Instruct-2407", "mistral"),
        ("Mistral-Small-3.2-24B-Instruct-2506", "mistral-args"),
    ],
)
def test_the_format_is_read_from_the_template(template: str, expected: str) -> None:
    source = chat_template(template)
    assert detect(source).name == expected
    assert ChatTemplate(source, bos_token="<s>", eos_token="</s>").tool_format == expected


def test_a_template_that_names_no_format_gets_the_generic_one() -> None:
    assert detect(None) is HERMES
    assert detect("{% for m in messages %}{{ m.content }}{% endfor %}") is HERMES


WEATHER = {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}
TIME = {"name": "get_time", "arguments": {"zone": "Asia/Shanghai"}}

# (format, what the model wrote, the content expected, the calls expected)
RECORDED: list[tuple[str, str, str | None, list[dict[str, Any]]]] = [
    # Qwen2.5-7B-Instruct: one call, the tags on their own lines.
    (
        "hermes",
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}\n'
        "</tool_call>",
        None,
        [WEATHER],
    ),
    # Qwen2.5: two calls in one turn, a sentence before them.
    (
        "hermes",
        "I'll look both up.\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": {"zone": "Asia/Shanghai"}}\n</tool_call>',
        "I'll look both up.",
        [WEATHER, TIME],
    ),
    # Hermes 3: arguments before the name.
    (
        "hermes",
        '<tool_call>\n{"arguments": {"zone": "Asia/Shanghai"}, "name": "get_time"}\n</tool_call>',
        None,
        [TIME],
    ),
    # A plain answer in Chinese: no call.
    ("hermes", "巴黎今天晴,气温 18 度。", "巴黎今天晴,气温 18 度。", []),
    # A call to a tool that was not offered is text, as written.
    (
        "hermes",
        '<tool_call>\n{"name": "send_email", "arguments": {}}\n</tool_call>',
        '<tool_call>\n{"name": "send_email", "arguments": {}}\n</tool_call>',
        [],
    ),
    # Llama 3.1-8B-Instruct: the call is the whole reply.
    (
        "llama3",
        '{"name": "get_weather", "parameters": {"city": "Paris", "days": 3}}',
        None,
        [WEATHER],
    ),
    # Llama 3.1 with <|python_tag|> first.
    (
        "llama3",
        '<|python_tag|>{"name": "get_time", "parameters": {"zone": "Asia/Shanghai"}}',
        None,
        [TIME],
    ),
    # Llama 3.2-3B-Instruct: a "type" key, and the arguments as a JSON string.
    (
        "llama3",
        '{"type": "function", "name": "get_time", '
        '"parameters": "{\\"zone\\": \\"Asia/Shanghai\\"}"}',
        None,
        [TIME],
    ),
    # Llama: a plain answer that mentions braces is content.
    (
        "llama3",
        "Use {city} as the placeholder.",
        "Use {city} as the placeholder.",
        [],
    ),
    # Llama: text, then the call after <|python_tag|>.
    (
        "llama3",
        "Checking.<|python_tag|>"
        '{"name": "get_weather", "parameters": {"city": "Paris", "days": 3}}',
        "Checking.",
        [WEATHER],
    ),
    # Mistral Nemo: an array after [TOOL_CALLS], with Mistral's 9-character ids.
    (
        "mistral",
        '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}, '
        '"id": "a1B2c3D4e"}, {"name": "get_time", "arguments": {"zone": "Asia/Shanghai"}, '
        '"id": "f5G6h7I8j"}]',
        None,
        [WEATHER, TIME],
    ),
    # Mistral 7B v0.3: a space after the tag.
    (
        "mistral",
        '[TOOL_CALLS] [{"name": "get_time", "arguments": {"zone": "Asia/Shanghai"}}]',
        None,
        [TIME],
    ),
    # Mistral Small 3.2: name[ARGS]{...} per call.
    (
        "mistral-args",
        '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris", "days": 3}'
        '[TOOL_CALLS]get_time[ARGS]{"zone": "Asia/Shanghai"}',
        None,
        [WEATHER, TIME],
    ),
    # Mistral: an unfinished call (cut by max_tokens) is text.
    (
        "mistral",
        '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Par',
        '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Par',
        [],
    ),
]


def openai_calls(calls: list[dict[str, Any]], first: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "id": f"functions.{call['name']}:{first + i}",
            "type": "function",
            "function": {
                "name": call["name"],
                "arguments": json.dumps(call["arguments"], ensure_ascii=False),
            },
        }
        for i, call in enumerate(calls)
    ]


@pytest.mark.parametrize(("fmt", "text", "content", "calls"), RECORDED)
def test_a_whole_reply_is_split_into_content_and_calls(
    fmt: str, text: str, content: str | None, calls: list[dict[str, Any]]
) -> None:
    reply = parse_reply(text, plan(fmt, first=4))
    assert reply.calls == openai_calls(calls, first=4)
    assert reply.content == content


async def scripted(pieces: list[str]) -> AsyncGenerator[ChatEvent, None]:
    for piece in pieces:
        yield TextDelta(0, piece, 1)
    yield ChoiceFinished(0, "stop", len(pieces))


def pieces_of(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


async def streamed(fmt: str, pieces: list[str]) -> list[ChatEvent]:
    return [event async for event in _with_tool_calls(scripted(pieces), plan(fmt))]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 1000])
@pytest.mark.parametrize(("fmt", "text", "content", "calls"), RECORDED)
async def test_a_streamed_reply_splits_as_the_whole_one_does(
    fmt: str, text: str, content: str | None, calls: list[dict[str, Any]], size: int
) -> None:
    pieces = pieces_of(text, size)
    events = await streamed(fmt, pieces)
    sent = "".join(e.text for e in events if isinstance(e, TextDelta))
    made = [call for e in events if isinstance(e, ToolCallsMade) for call in e.calls]
    assert made == openai_calls(calls)
    assert sent == (content or "")
    # Every piece's token is still counted (billing), whatever was held back.
    assert sum(e.tokens for e in events if isinstance(e, TextDelta)) == len(pieces)
    assert isinstance(events[-1], ChoiceFinished)


async def test_content_streams_before_the_call_and_each_call_when_it_closes() -> None:
    text = RECORDED[1][1]
    events = await streamed("hermes", pieces_of(text, 4))
    kinds = [
        "text" if isinstance(e, TextDelta) and e.text else "call"
        for e in events
        if (isinstance(e, TextDelta) and e.text) or isinstance(e, ToolCallsMade)
    ]
    # The sentence goes out first, then each call on its own, before the choice ends.
    assert kinds[0] == "text" and kinds.count("call") == 2
    finished_at = next(i for i, e in enumerate(events) if isinstance(e, ChoiceFinished))
    first_call_at = next(i for i, e in enumerate(events) if isinstance(e, ToolCallsMade))
    assert first_call_at < finished_at - 1  # not only at the end


async def test_text_that_may_begin_a_tag_is_held_never_sent_half() -> None:
    events = await streamed("hermes", ["Sure", " <tool", "_ca", "ll> is a tag I know"])
    sent = [e.text for e in events if isinstance(e, TextDelta) and e.text]
    assert "".join(sent) == "Sure <tool_call> is a tag I know"
    assert not any(isinstance(e, ToolCallsMade) for e in events)


@pytest.mark.parametrize("fmt", [HERMES, LLAMA3, MISTRAL, MISTRAL_ARGS])
def test_calls_written_in_history_parse_back(fmt: Any) -> None:
    calls = [WEATHER] if fmt.max_calls == 1 else [WEATHER, TIME]
    written = fmt.write_calls([(c["name"], c["arguments"]) for c in calls])
    assert parse_reply(written, plan(fmt.name)).calls == openai_calls(calls)


def test_parallel_calls_off_keeps_one() -> None:
    reply = parse_reply(RECORDED[1][1], plan("hermes", max_calls=1))
    assert [c["function"]["name"] for c in reply.calls] == ["get_weather"]
