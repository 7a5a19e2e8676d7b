"""Tool calls end to end: the real model, the openai SDK's own types."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "enum": ["Paris", "Beijing", "Lima"]},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a time zone.",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}},
            "required": ["zone"],
        },
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def schema_of(name: str) -> dict:
    return next(
        t["function"]["parameters"] for t in (WEATHER, CLOCK) if t["function"]["name"] == name
    )


@pytest.mark.parametrize(
    "choice", ["required", {"type": "function", "function": {"name": "get_weather"}}]
)
def test_required_calls_parse_and_validate(client: openai.OpenAI, choice):
    completion = client.chat.completions.create(
        model="kimi-k2-turbo-preview",
        messages=ASK,
        tools=[WEATHER, CLOCK],
        tool_choice=choice,
        temperature=1.0,
        max_tokens=200,
    )
    choice0 = completion.choices[0]
    assert choice0.finish_reason == "tool_calls"
    calls = choice0.message.tool_calls
    assert calls
    for index, call in enumerate(calls):
        assert call.id == f"functions.{call.function.name}:{index}"
        assert call.type == "function"
        jsonschema.validate(json.loads(call.function.arguments), schema_of(call.function.name))
    if isinstance(choice, dict):
        assert {call.function.name for call in calls} == {"get_weather"}


def test_streamed_calls_reassemble_to_the_plain_reply(client: openai.OpenAI):
    options = {
        "model": "moonshot-v1-8k",
        "messages": ASK,
        "tools": [WEATHER],
        "tool_choice": "required",
        "temperature": 0,
        "max_tokens": 200,
    }
    plain = client.chat.completions.create(**options).choices[0].message.tool_calls
    calls: dict[int, dict] = {}
    finish = None
    for chunk in client.chat.completions.create(stream=True, **options):
        if not chunk.choices:
            continue
        finish = chunk.choices[0].finish_reason or finish
        for delta in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
            entry["id"] = delta.id or entry["id"]
            entry["name"] += delta.function.name or ""
            entry["arguments"] += delta.function.arguments or ""
    assert finish == "tool_calls"
    assert [(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())] == [
        (c.id, c.function.name, c.function.arguments) for c in plain
    ]


def test_round_trip_call_result_answer(client: openai.OpenAI):
    first = client.chat.completions.create(
        model="kimi-k2-0905-preview",
        messages=ASK,
        tools=[WEATHER],
        tool_choice="required",
        temperature=0,
        max_tokens=200,
    )
    assistant = first.choices[0].message
    call = assistant.tool_calls[0]
    history = [
        *ASK,
        assistant.model_dump(exclude_none=True),
        {
            "role": "tool",
            "tool_call_id": call.id,
            "name": call.function.name,
            "content": json.dumps({"city": "Paris", "temperature": 21, "sky": "sunny"}),
        },
    ]
    final = client.chat.completions.create(
        model="kimi-k2-0905-preview",
        messages=history,
        tools=[WEATHER],
        tool_choice="none",
        temperature=0,
        max_tokens=60,
    )
    answer = final.choices[0]
    assert answer.finish_reason in ("stop", "length")
    assert answer.message.content and not answer.message.tool_calls
    # the call's id numbering continues across the conversation
    again = client.chat.completions.create(
        model="kimi-k2-0905-preview",
        messages=history,
        tools=[WEATHER],
        tool_choice="required",
        temperature=0,
        max_tokens=200,
    )
    expected = f"functions.get_weather:{len(assistant.tool_calls)}"
    assert again.choices[0].message.tool_calls[0].id == expected


@pytest.mark.parametrize(
    ("tools", "choice", "param"),
    [
        (
            [{"type": "function", "function": {"name": "a b", "parameters": {"type": "object"}}}],
            "auto",
            "tools[0].function.name",
        ),
        (
            [
                {
                    "type": "function",
                    "function": {
                        "name": "ok_name",
                        "parameters": {
                            "type": "object",
                            # refused at the server's level too (format would
                            # pass: Moonshot's server does not judge it)
                            "properties": {"x": {"type": "string", "minItems": 1}},
                        },
                    },
                }
            ],
            "auto",
            "tools[0].function.parameters",
        ),
        ([WEATHER], {"type": "function", "function": {"name": "nope"}}, "tool_choice"),
        ([WEATHER], "sometimes", "tool_choice"),
    ],
)
def test_tool_refusals(client: openai.OpenAI, tools, choice, param):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="kimi-k2.5", messages=ASK, tools=tools, tool_choice=choice
        )
    assert caught.value.body["param"] == param


def test_builtin_tool_without_a_provider_is_a_clear_error(client: openai.OpenAI):
    history = [
        *ASK,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "functions.$web_search:0",
                    "type": "function",
                    "function": {"name": "$web_search", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "functions.$web_search:0", "content": "{}"},
    ]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="kimi-k2.5",
            messages=history,
            tools=[{"type": "builtin_function", "function": {"name": "$web_search"}}],
        )
    assert "provider" in caught.value.body["message"]
