"""Tool and response schemas as real generators write them, on the embedded model.

Each schema is validated at Moonshot's server level (MFJS STRICT), so what
pydantic, openai-python's helpers, kimi-cli and an MCP server send is
accepted; forced calls under it, plain and streamed, return arguments that
validate against the schema exactly as the client sent it (jsonschema, the
dialect the schema names). The kimi-cli and MCP tool lists are recordings
(tests/data/README.md); the pydantic ones are generated here by pydantic.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field, HttpUrl

from tests.datafiles import kimi_cli_tools, mcp_filesystem_tools

MODEL = "moonshot-v1-8k"
# Enough for kimi-cli's AskUserQuestion (up to 4 questions of up to 4 options)
# at the grammar's bounds; a reply cut short would have no finished call.
MAX_TOKENS = 1024
CONCURRENCY = 8
PROMPT = "Call the tool with example arguments. Keep every text value short."


class Unit(StrEnum):
    celsius = "celsius"
    fahrenheit = "fahrenheit"


class Place(BaseModel):
    city: str
    country: str | None = None


class Forecast(BaseModel):
    """Get the weather forecast for a place."""

    place: Place  # a nested model: $defs and $ref
    days: int = Field(3, ge=1, le=14)
    unit: Unit = Unit.celsius  # an enum: $ref with a default beside it
    detail: Literal["brief", "full"] = "brief"
    alerts: list[str] = Field(default_factory=list, max_length=3)
    since: datetime | None = None  # anyOf with null, format date-time, default null
    source: HttpUrl | None = None  # format uri


class Trip(BaseModel):
    """A trip: only fields whose JSON schema says all pydantic checks (the SDK's
    parse helper validates with pydantic, and `format` is not generated)."""

    destination: Place
    nights: int = Field(2, ge=1, le=30)
    unit: Unit = Unit.celsius
    pace: Literal["slow", "fast"] | None = None


class Note(BaseModel):
    """Save a note."""

    title: str = Field(max_length=40)
    tags: list[Literal["work", "home", "urgent"]] = []
    pinned: bool = False


def pydantic_tool(model: type[BaseModel]) -> dict[str, Any]:
    """The tool as pydantic-ai and LangChain send it: model_json_schema() as is."""
    return {
        "type": "function",
        "function": {
            "name": model.__name__,
            "description": model.__doc__ or "",
            "parameters": model.model_json_schema(),
        },
    }


def real_tools() -> list[tuple[str, dict[str, Any]]]:
    tools = [
        ("pydantic", pydantic_tool(Forecast)),
        ("pydantic", pydantic_tool(Note)),
        ("openai.pydantic_function_tool", openai.pydantic_function_tool(Forecast)),
        ("openai.pydantic_function_tool", openai.pydantic_function_tool(Note)),
        *(("kimi-cli-1.52", tool) for tool in kimi_cli_tools()),
        *(("mcp-filesystem", tool) for tool in mcp_filesystem_tools()),
    ]
    return tools


TOOLS = real_tools()


def validation_problem(schema: dict[str, Any], text: str) -> str | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return f"does not parse ({error}): {text[:200]!r}"
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    return None if error is None else f"does not validate ({error.message}): {text[:200]!r}"


async def forced_arguments(aclient: openai.AsyncOpenAI, tool: dict[str, Any], stream: bool) -> str:
    request: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "tools": [tool],
        "tool_choice": {"type": "function", "function": {"name": tool["function"]["name"]}},
        "max_completion_tokens": MAX_TOKENS,
    }
    if not stream:
        reply = await aclient.chat.completions.create(**request)
        calls = reply.choices[0].message.tool_calls
        assert calls, f"no tool call: {reply.choices[0].message.content!r}"
        return str(calls[0].function.arguments)
    arguments: dict[int, str] = {}
    async for chunk in await aclient.chat.completions.create(**request, stream=True):
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                arguments[call.index] = arguments.get(call.index, "") + (
                    call.function.arguments or ""
                )
    assert arguments, "no tool call in the stream"
    return arguments[min(arguments)]


def test_the_recordings_hold_the_schemas_that_motivated_the_levels() -> None:
    kimi = [tool["function"]["parameters"] for tool in kimi_cli_tools()]
    assert len(kimi) == 15
    # pydantic's Optional[...] = None: a default beside anyOf (refused at TEST level)
    assert any(
        "anyOf" in prop and "default" in prop
        for schema in kimi
        for prop in schema.get("properties", {}).values()
    )
    assert all("$schema" in tool["function"]["parameters"] for tool in mcp_filesystem_tools())


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_forced_calls_under_real_schemas_validate_as_sent(
    aclient: openai.AsyncOpenAI, stream: bool
) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(tool: dict[str, Any]) -> str | None:
        async with gate:
            arguments = await forced_arguments(aclient, tool, stream)
        return validation_problem(tool["function"]["parameters"], arguments)

    problems = await asyncio.gather(*(one(tool) for _, tool in TOOLS))
    failures = [
        f"{source} {tool['function']['name']}: {problem}"
        for (source, tool), problem in zip(TOOLS, problems, strict=True)
        if problem is not None
    ]
    assert not failures, f"{len(failures)} of {len(TOOLS)} failed:\n" + "\n".join(failures)


async def test_the_sdks_parse_helper_gets_a_valid_pydantic_object(
    aclient: openai.AsyncOpenAI,
) -> None:
    completion = await aclient.chat.completions.parse(
        model=MODEL,
        messages=[{"role": "user", "content": "A trip to Paris, as JSON."}],
        response_format=Trip,
        max_completion_tokens=MAX_TOKENS,
    )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Trip)  # the SDK validated it with pydantic
    assert 1 <= parsed.nights <= 30


async def test_the_sdks_stream_helper_gets_a_valid_pydantic_object(
    aclient: openai.AsyncOpenAI,
) -> None:
    async with aclient.chat.completions.stream(
        model=MODEL,
        messages=[{"role": "user", "content": "A note about groceries, as JSON."}],
        response_format=Note,
        max_completion_tokens=MAX_TOKENS,
    ) as stream:
        completion = await stream.get_final_completion()
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Note)
    assert len(parsed.title) <= 40


async def test_response_format_takes_model_json_schema_with_defaults(
    aclient: openai.AsyncOpenAI,
) -> None:
    schema = Forecast.model_json_schema()
    reply = await aclient.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "A forecast for Oslo, as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "f", "schema": schema}},
        max_completion_tokens=MAX_TOKENS,
    )
    assert validation_problem(schema, reply.choices[0].message.content or "") is None
