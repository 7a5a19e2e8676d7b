"""Anthropic requests as the chat pipeline sees them (anthropic/translate.py)."""

from __future__ import annotations

import json

import pytest

from moonbase.anthropic.schemas import CountTokensRequest, MessagesRequest
from moonbase.anthropic.translate import resolve_model, to_chat_request
from moonbase.errors import BadRequestError
from tests.contract_tools import ANTHROPIC_WEATHER

WEATHER = ANTHROPIC_WEATHER


def translate(**fields: object) -> dict:
    request = MessagesRequest.model_validate({"model": "m", "max_tokens": 2048, **fields})
    return to_chat_request(request, "kimi-k2-0905-preview").model_dump(exclude_unset=True)


def test_a_tool_round_trip_becomes_tool_calls_and_tool_messages():
    chat = translate(
        system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use tools."}],
        messages=[
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Two cities.", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                     "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_weather",
                     "input": {"city": "Rome"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "21 C"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True,
                     "content": [{"type": "text", "text": "no station"}]},
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    )  # fmt: skip
    messages = chat["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "tool", "user"]
    assert messages[0]["content"] == "Be brief.\n\nUse tools."
    assistant = messages[2]
    assert assistant["content"] == "Checking."
    assert assistant["reasoning_content"] == "Two cities."
    calls = assistant["tool_calls"]
    assert [c["id"] for c in calls] == ["toolu_1", "toolu_2"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Paris"}
    assert messages[3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "21 C"}
    assert messages[4]["content"] == "Error: no station"
    assert messages[5]["content"] == [{"type": "text", "text": "And tomorrow?"}]
    assert chat["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert chat["parallel_tool_calls"] is False
    assert chat["max_completion_tokens"] == 2048


@pytest.mark.parametrize(
    ("choice", "expected"),
    [({"type": "auto"}, "auto"), ({"type": "any"}, "required"), ({"type": "none"}, "none")],
)
def test_tool_choice_types(choice: dict, expected: str):
    chat = translate(messages=[{"role": "user", "content": "hi"}], tools=[WEATHER],
                     tool_choice=choice)  # fmt: skip
    assert chat["tool_choice"] == expected


def test_a_final_assistant_turn_is_a_prefill():
    chat = translate(
        messages=[
            {"role": "user", "content": "Give JSON."},
            {"role": "assistant", "content": "{"},
        ]
    )
    assert chat["messages"][-1] == {"role": "assistant", "content": "{", "partial": True}


def test_images_become_image_urls():
    chat = translate(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                 "data": "iVBORw0K"}},
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
                    {"type": "text", "text": "Compare."},
                ],
            }
        ]
    )  # fmt: skip
    parts = chat["messages"][0]["content"]
    assert parts[0]["image_url"]["url"] == "data:image/png;base64,iVBORw0K"
    assert parts[1]["image_url"]["url"] == "https://x.test/a.png"


def test_sampling_stop_thinking_and_metadata():
    chat = translate(
        messages=[{"role": "user", "content": "hi"}],
        temperature=0.3,
        top_p=0.9,
        top_k=40,
        stop_sequences=["END"],
        thinking={"type": "enabled", "budget_tokens": 1024},
        metadata={"user_id": "user-42"},
    )
    assert (chat["temperature"], chat["top_p"], chat["stop"]) == (0.3, 0.9, ["END"])
    assert chat["thinking"] == {"type": "enabled"}
    assert chat["safety_identifier"] == "user-42"


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 512}}, "greater than or equal to 1024"),
        ({"thinking": {"type": "enabled", "budget_tokens": 4096}}, "greater than thinking"),
        ({"thinking": {"type": "enabled"}}, "budget_tokens"),
        ({"tools": [{**WEATHER, "type": "web_search_20250305"}]}, "server tool"),
        ({"tool_choice": {"type": "tool"}, "tools": [WEATHER]}, "tool_choice.name"),
    ],
)
def test_what_anthropic_refuses_is_refused(fields: dict, words: str):
    with pytest.raises(BadRequestError) as refused:
        translate(messages=[{"role": "user", "content": "hi"}], **fields)
    assert words in refused.value.message


def test_tool_use_in_a_user_turn_is_refused():
    block = {"type": "tool_use", "id": "t", "name": "x", "input": {}}
    with pytest.raises(BadRequestError) as refused:
        translate(messages=[{"role": "user", "content": [block]}])
    assert "assistant turn" in refused.value.message


def test_a_count_request_translates_without_a_budget():
    request = CountTokensRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER]}
    )
    chat = to_chat_request(request, "moonshot-v1-8k")
    assert chat.max_completion_tokens is None and chat.tools is not None


def test_model_aliases_exact_then_patterns():
    aliases = {"claude-opus-4-1": "kimi-k2.5", "claude-*": "kimi-k2-0905-preview"}
    assert resolve_model("claude-opus-4-1", aliases) == "kimi-k2.5"
    assert resolve_model("claude-3-5-haiku-latest", aliases) == "kimi-k2-0905-preview"
    assert resolve_model("moonshot-v1-8k", aliases) == "moonshot-v1-8k"


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": []}],
        [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "prefix"},
            {"role": "user", "content": []},
        ],
    ],
)
def test_an_empty_turn_is_refused_not_dropped(messages: list):
    with pytest.raises(BadRequestError) as refused:
        translate(messages=messages)
    assert "non-empty content" in refused.value.message


def test_a_final_assistant_turn_of_tool_use_alone_is_refused():
    call = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
    with pytest.raises(BadRequestError) as refused:
        translate(
            messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": [call]}],
            tools=[WEATHER],
        )
    assert "tool_result" in refused.value.message


def test_an_empty_final_assistant_turn_is_no_prefill():
    chat = translate(
        messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": []}]
    )
    assert [m["role"] for m in chat["messages"]] == ["user"]


def test_a_server_tool_is_named_as_such():
    with pytest.raises(BadRequestError) as refused:
        translate(
            messages=[{"role": "user", "content": "q"}],
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        )
    assert "server tool" in refused.value.message
    with pytest.raises(BadRequestError) as missing:
        translate(messages=[{"role": "user", "content": "q"}], tools=[{"name": "x_tool"}])
    assert "input_schema" in missing.value.message
