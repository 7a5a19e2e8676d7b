"""Issue 17 on the embedded model, through the openai SDK: refusals of the
newest contract, tools a system message loads, and calls under
``tool_choice: "auto"`` held to the tools' schemas by a lazy grammar."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jsonschema
import openai
import pytest

from tests.contract_tools import SEARCH, WEATHER
from tests.e2e.test_structured_output_e2e import SCHEMAS, check

MODEL = "moonshot-v1-8k"
STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])


async def calls_of(
    aclient: openai.AsyncOpenAI, stream: bool, **request: Any
) -> tuple[list[dict[str, str]], str, str | None]:
    """The first choice's calls (name, id, arguments), its content and finish reason."""
    if not stream:
        reply = await aclient.chat.completions.create(model=MODEL, **request)
        choice = reply.choices[0]
        calls = [
            {"name": c.function.name, "id": c.id, "arguments": c.function.arguments}
            for c in choice.message.tool_calls or []
        ]
        return calls, choice.message.content or "", choice.finish_reason
    found: dict[int, dict[str, str]] = {}
    content, finish = "", None
    async for chunk in await aclient.chat.completions.create(model=MODEL, stream=True, **request):
        for choice in chunk.choices:
            content += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                entry = found.setdefault(call.index, {"name": "", "id": "", "arguments": ""})
                entry["id"] = call.id or entry["id"]
                entry["name"] += call.function.name or "" if call.function else ""
                entry["arguments"] += (call.function.arguments or "") if call.function else ""
    return [found[i] for i in sorted(found)], content, finish


@STREAMS
async def test_required_without_tools_is_a_bad_request(aclient: openai.AsyncOpenAI, stream: bool):
    with pytest.raises(openai.BadRequestError) as refused:
        await calls_of(
            aclient,
            stream,
            messages=[{"role": "user", "content": "hi"}],
            tool_choice="required",
            max_tokens=4,
        )
    assert refused.value.body["param"] == "tool_choice"  # type: ignore[index]


@STREAMS
async def test_a_tool_only_a_system_message_declares_is_called(
    aclient: openai.AsyncOpenAI, stream: bool
):
    calls, _, finish = await calls_of(
        aclient,
        stream,
        messages=[
            {"role": "system", "content": "You help with the docs.", "tools": [SEARCH]},
            {"role": "user", "content": "Find what the docs say about rate limits."},
        ],
        tool_choice="required",
        max_tokens=256,
    )
    assert finish == "tool_calls" and calls
    for index, call in enumerate(calls):
        assert call["name"] == "search_docs" and call["id"] == f"functions.search_docs:{index}"
        jsonschema.validate(json.loads(call["arguments"]), SEARCH["function"]["parameters"])


@STREAMS
async def test_a_tool_a_later_system_message_loads_is_callable_after_it(
    aclient: openai.AsyncOpenAI, stream: bool
):
    calls, _, _ = await calls_of(
        aclient,
        stream,
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the weather in Oslo?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "functions.get_weather:0",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "functions.get_weather:0", "content": "Snow."},
            {"role": "system", "content": "The docs are loaded now.", "tools": [SEARCH]},
            {"role": "user", "content": "Search the docs for snow chains."},
        ],
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "search_docs"}},
        max_tokens=256,
    )
    assert calls and all(call["name"] == "search_docs" for call in calls)
    # Ids continue the conversation's numbering (one call came before).
    assert calls[0]["id"] == "functions.search_docs:1"
    for call in calls:
        jsonschema.validate(json.loads(call["arguments"]), SEARCH["function"]["parameters"])


# The invitation: two earlier turns in which the assistant called the tool
# for someone else, sent back as a client sends history (tool_calls, then the
# tool's result), and the same request for a third person. The earlier calls'
# arguments are the model's own forced call for the schema (held to it by the
# grammar), made once per schema and shared by the plain and streamed runs.
PEOPLE = ("Ann", "Bob")
_examples: dict[str, str] = {}


def form_tool(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": "submit_form", "description": "Submit the form", "parameters": schema},
    }


async def example_arguments(aclient: openai.AsyncOpenAI, schema: dict[str, Any]) -> str:
    key = json.dumps(schema, sort_keys=True)
    if key not in _examples:
        calls, _, _ = await calls_of(
            aclient,
            False,
            messages=[{"role": "user", "content": "Submit the form for Zoe."}],
            tools=[form_tool(schema)],
            tool_choice="required",
            max_tokens=256,
        )
        _examples[key] = calls[0]["arguments"] if calls else "{}"
    return _examples[key]


def invited(schema: dict[str, Any], arguments: str) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    for index, person in enumerate(PEOPLE):
        call_id = f"functions.submit_form:{index}"
        function = {"name": "submit_form", "arguments": arguments}
        messages += [
            {"role": "user", "content": f"Submit the form for {person}."},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": call_id, "type": "function", "function": function}],
            },
            {"role": "tool", "tool_call_id": call_id, "content": "Saved."},
            {"role": "assistant", "content": f"Submitted for {person}."},
        ]
    messages.append({"role": "user", "content": "Submit the form for Cho."})
    return {
        "messages": messages,
        "tools": [form_tool(schema)],
        "tool_choice": "auto",
        "max_tokens": 256,
        "temperature": 0.3,
    }


@STREAMS
async def test_calls_under_auto_parse_and_validate_over_50_schemas(
    aclient: openai.AsyncOpenAI, stream: bool
):
    gate = asyncio.Semaphore(8)

    async def one(schema: dict[str, Any]) -> tuple[int, list[str]]:
        async with gate:
            arguments = await example_arguments(aclient, schema)
            calls, content, finish = await calls_of(aclient, stream, **invited(schema, arguments))
        problems = [f"called {call['name']!r}" for call in calls if call["name"] != "submit_form"]
        problems += [p for call in calls if (p := check(schema, call["arguments"])) is not None]
        if "<tool_call" in content and finish != "length":  # a call begun and not finished
            problems.append(f"a call left as text: {content[:200]!r}")
        return len(calls), [f"{json.dumps(schema)[:120]}: {p}" for p in problems]

    results = await asyncio.gather(*(one(schema) for schema in SCHEMAS))
    made = sum(count for count, _ in results)
    problems = [problem for _, found in results for problem in found]
    print(f"auto, {'streamed' if stream else 'plain'}: {made} calls over {len(SCHEMAS)} schemas")
    assert not problems, "\n".join(problems)
    # The model decides: SmolLM2-135M calls under about a quarter of these
    # invitations and otherwise imitates the tool result's <tool_response>
    # turn; the calls it does make are what this test holds to the schemas.
    assert made > 0, "the model made no call to check"
