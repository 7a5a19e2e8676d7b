"""Moonshot's newest chat contract (issue 17), one test per row of its table,
on the scripted engine: what is refused (400 with the field in `param`),
dynamically loaded tools, and the per-family rule for a named tool_choice.
Requests are sent as a client of the newest API sends them: thinking
disabled, max_tokens 4."""

from __future__ import annotations

import json
from typing import Any

import pytest

from moonbase import catalog
from moonbase.chat.tools import plan_tools
from moonbase.errors import BadRequestError
from moonbase.schemas.chat import ChatCompletionRequest
from tests.conftest import PlatformClient
from tests.contract_tools import SEARCH, WEATHER
from tests.platform.test_chat_platform import assert_error, sse_events

MODEL = "kimi-k2.5"
USER = [{"role": "user", "content": "What is the weather in Paris?"}]
STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])


def body(**fields: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": USER,
        "thinking": {"type": "disabled"},
        "max_tokens": 4,
        **fields,
    }


@STREAMS
async def test_required_with_no_tools_is_refused(platform: PlatformClient, stream: bool):
    response = await platform.post(
        "/v1/chat/completions", json=body(tool_choice="required", stream=stream)
    )
    error = assert_error(response, 400, "invalid_request_error", param="tool_choice")
    assert "no tools" in error["message"]


@STREAMS
@pytest.mark.parametrize(
    "choice", ["auto", "none", "required", {"type": "function", "function": {"name": "x"}}]
)
async def test_any_tool_choice_with_an_empty_tools_list_is_refused(
    platform: PlatformClient, stream: bool, choice: Any
):
    response = await platform.post(
        "/v1/chat/completions", json=body(tools=[], tool_choice=choice, stream=stream)
    )
    assert_error(response, 400, "invalid_request_error", param="tool_choice")


@STREAMS
async def test_two_tools_with_one_name_are_refused(platform: PlatformClient, stream: bool):
    response = await platform.post(
        "/v1/chat/completions", json=body(tools=[WEATHER, WEATHER], stream=stream)
    )
    error = assert_error(response, 400, "invalid_request_error", param="tools[1].function.name")
    assert "get_weather" in error["message"] and "unique" in error["message"]


async def test_a_name_declared_by_the_request_and_a_system_message_is_refused(
    platform: PlatformClient,
):
    messages = [{"role": "system", "content": "Tools.", "tools": [WEATHER]}, *USER]
    response = await platform.post(
        "/v1/chat/completions", json=body(messages=messages, tools=[WEATHER])
    )
    assert_error(response, 400, "invalid_request_error", param="messages[0].tools[0].function.name")


@STREAMS
@pytest.mark.parametrize("role", ["user", "assistant"])
async def test_tools_inside_a_user_or_assistant_message_are_refused(
    platform: PlatformClient, stream: bool, role: str
):
    messages = [*USER, {"role": role, "content": "hello", "tools": [WEATHER]}]
    if role == "assistant":
        messages.append({"role": "user", "content": "and?"})
    response = await platform.post(
        "/v1/chat/completions", json=body(messages=messages, stream=stream)
    )
    error = assert_error(response, 400, "invalid_request_error", param="messages[1].tools")
    assert "only system messages" in error["message"]


async def test_a_system_messages_tools_are_checked_like_the_requests(platform: PlatformClient):
    bad = {"type": "function", "function": {"name": "no spaces allowed"}}
    messages = [{"role": "system", "content": "Tools.", "tools": [bad]}, *USER]
    response = await platform.post("/v1/chat/completions", json=body(messages=messages))
    assert_error(response, 400, "invalid_request_error", param="messages[0].tools[0].function.name")


def reply_of(response: Any, stream: bool) -> tuple[list[dict[str, Any]], str | None]:
    """The tool calls and finish reason of the first choice, plain or streamed."""
    assert response.status_code == 200, response.text
    if not stream:
        choice = response.json()["choices"][0]
        return choice["message"].get("tool_calls") or [], choice["finish_reason"]
    chunks = [e for e in sse_events(response.text) if isinstance(e, dict)]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1]
    return [call for d in deltas for call in d.get("tool_calls", [])], finish


@STREAMS
async def test_a_system_messages_tools_are_offered_and_callable(
    platform: PlatformClient, stream: bool
):
    platform.engine.reply = (
        '<tool_call>{"name": "search_docs", "arguments": {"query": "rate limits"}}</tool_call>'
    )
    messages = [
        {"role": "system", "content": "You help with the docs.", "tools": [SEARCH]},
        {"role": "user", "content": "How do rate limits work?"},
    ]
    response = await platform.post(
        "/v1/chat/completions", json=body(messages=messages, stream=stream, max_tokens=200)
    )
    calls, finish = reply_of(response, stream)
    assert finish == "tool_calls"
    assert [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls
    ] == [("functions.search_docs:0", "search_docs", {"query": "rate limits"})]
    system = platform.engine.rendered[-1][0]
    assert system.role == "system" and system.content.startswith("You help with the docs.")
    assert "search_docs" in system.content and "<tool_call>" in system.content


async def test_a_later_system_messages_tools_join_the_conversation_where_it_loads_them(
    platform: PlatformClient,
):
    platform.engine.reply = '{"calls": [{"name": "search_docs", "arguments": {"query": "x"}}]}'
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "Which city?"},
        {"role": "system", "content": "Docs are loaded now.", "tools": [SEARCH]},
        {"role": "user", "content": "Search the docs for x."},
    ]
    response = await platform.post(
        "/v1/chat/completions",
        json=body(messages=messages, tools=[WEATHER], tool_choice="required", max_tokens=200),
    )
    calls, _ = reply_of(response, False)
    assert [c["function"]["name"] for c in calls] == ["search_docs"]
    turns = platform.engine.rendered[-1]
    assert "get_weather" in turns[0].content and "search_docs" not in turns[0].content
    assert "search_docs" in turns[3].content and "get_weather" not in turns[3].content
    # Forced: the grammar covers both the request's tool and the loaded one.
    constraint = platform.engine.requests[-1].constraint
    assert constraint is not None and constraint.opening is None
    names = json.dumps(constraint.schema)
    assert "get_weather" in names and "search_docs" in names


async def test_tool_choice_none_offers_no_loaded_tools(platform: PlatformClient):
    messages = [{"role": "system", "content": "Docs.", "tools": [SEARCH]}, *USER]
    response = await platform.post(
        "/v1/chat/completions", json=body(messages=messages, tool_choice="none")
    )
    assert response.status_code == 200, response.text
    assert "search_docs" not in platform.engine.rendered[-1][0].content


async def test_the_estimate_counts_a_system_messages_tools(platform: PlatformClient):
    plain = [{"role": "system", "content": "Docs."}, *USER]
    loaded = [{"role": "system", "content": "Docs.", "tools": [SEARCH]}, *USER]
    counts = []
    for messages in (plain, loaded):
        response = await platform.post(
            "/v1/tokenizers/estimate-token-count", json={"model": MODEL, "messages": messages}
        )
        assert response.status_code == 200, response.text
        counts.append(response.json()["data"]["total_tokens"])
    assert counts[1] > counts[0] + len("search_docs")
    bad = [*USER, {"role": "user", "content": "x", "tools": [SEARCH]}]
    response = await platform.post(
        "/v1/tokenizers/estimate-token-count", json={"model": MODEL, "messages": bad}
    )
    assert_error(response, 400, "invalid_request_error", param="messages[1].tools")


@STREAMS
async def test_a_named_tool_choice_is_kept_for_the_seed_models(
    platform: PlatformClient, stream: bool
):
    platform.engine.reply = '{"calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}'
    choice = {"type": "function", "function": {"name": "get_weather"}}
    response = await platform.post(
        "/v1/chat/completions",
        json=body(tools=[WEATHER, SEARCH], tool_choice=choice, stream=stream, max_tokens=200),
    )
    calls, finish = reply_of(response, stream)
    assert finish == "tool_calls" and [c["function"]["name"] for c in calls] == ["get_weather"]
    assert all(spec.family.accepts_named_tool_choice for spec in catalog.MODEL_SPECS)


def test_a_family_that_refuses_a_named_tool_choice_says_what_to_send():
    newest = catalog.Family(
        "kimi-next", 1.0, catalog.Thinking.DEFAULT_ON, accepts_named_tool_choice=False
    )
    request = ChatCompletionRequest.model_validate(
        body(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}})
    )
    with pytest.raises(BadRequestError) as refused:
        plan_tools(request, newest)
    assert refused.value.param == "tool_choice"
    assert "required" in str(refused.value)
    auto = ChatCompletionRequest.model_validate(body(tools=[WEATHER], tool_choice="required"))
    assert plan_tools(auto, newest) is not None


@STREAMS
@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"response_format": {"type": "json_schema"}}, "response_format"),
        ({"thinking": {"type": "enabled", "keep": "some"}}, "thinking.keep"),
        (
            {
                "messages": [
                    *USER,
                    {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [
                            {
                                "id": "functions.get_weather:0",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": "{}"},
                            }
                        ],
                    },
                    {"role": "tool", "content": "sunny"},
                ],
                "tools": [WEATHER],
            },
            "messages[2].tool_call_id",
        ),
        ({"tools": [{"type": "retrieval", "function": {"name": "x"}}]}, "tools[0].type"),
    ],
    ids=[
        "response-format-type",
        "json-schema-missing",
        "thinking-keep",
        "tool-call-id",
        "tool-type",
    ],
)
async def test_what_was_already_refused_stays_refused(
    platform: PlatformClient, stream: bool, fields: dict[str, Any], param: str
):
    response = await platform.post("/v1/chat/completions", json=body(stream=stream, **fields))
    error = assert_error(response, 400, "invalid_request_error")
    assert error["param"].startswith(param), error


@pytest.mark.parametrize(
    "tool",
    [
        {"type": "function", "function": {"name": "bad\u0000name"}},
        {"type": "function", "function": {"name": "deep", "parameters": "x"}},
    ],
    ids=["nul-in-name", "parameters-not-an-object"],
)
async def test_hostile_tools_in_a_system_message_are_clean_400s(
    platform: PlatformClient, tool: dict[str, Any]
):
    messages = [{"role": "system", "content": "Tools.", "tools": [tool]}, *USER]
    response = await platform.post("/v1/chat/completions", json=body(messages=messages))
    error = assert_error(response, 400, "invalid_request_error")
    assert error["param"].startswith("messages[0].tools[0]")


async def test_a_system_messages_tool_schema_100000_deep_is_a_clean_400(platform: PlatformClient):
    deep = '{"type": "object", "properties": {"a": ' * 100_000 + "{}" + "}}" * 100_000
    tool = '{"type": "function", "function": {"name": "deep_tool", "parameters": ' + deep + "}}"
    raw = (
        '{"model": "kimi-k2.5", "thinking": {"type": "disabled"}, "max_tokens": 4, "messages": '
        '[{"role": "system", "content": "T", "tools": [' + tool + "]}, "
        '{"role": "user", "content": "hi"}]}'
    )
    response = await platform.post("/v1/chat/completions", content=raw)
    assert response.status_code in (400, 413), response.text
    assert response.json()["error"]["type"] in ("invalid_request_error", "request_too_large")
