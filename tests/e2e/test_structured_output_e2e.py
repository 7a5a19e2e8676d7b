"""50 MFJS schemas from the conformance vectors, as response_format and as forced
tool parameters, streaming and not: every output must parse and validate.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jsonschema
import openai
import pytest

from tests.datafiles import valid_mfjs_schemas

SCHEMA_COUNT = 50
MODEL = "moonshot-v1-8k"
MAX_TOKENS = 512
CONCURRENCY = 8


def object_schemas() -> list[dict[str, Any]]:
    """The first 50 distinct object-rooted schemas of the valid vectors."""
    seen: set[str] = set()
    schemas: list[dict[str, Any]] = []
    for schema in valid_mfjs_schemas():
        key = json.dumps(schema, sort_keys=True)
        if schema.get("type") == "object" and key not in seen:
            seen.add(key)
            schemas.append(schema)
    assert len(schemas) >= SCHEMA_COUNT, f"only {len(schemas)} object schemas in the vectors"
    return schemas[:SCHEMA_COUNT]


SCHEMAS = object_schemas()
PROMPT = "Fill in an example JSON object for this form. Keep every text value short."


def check(schema: dict[str, Any], text: str) -> str | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return f"does not parse ({error}): {text[:200]!r}"
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as error:
        return f"does not validate ({error.message}): {text[:200]!r}"
    return None


async def ask(aclient: openai.AsyncOpenAI, schema: dict[str, Any], mode: str, stream: bool) -> str:
    """The JSON text the model produced for ``schema`` in ``mode``."""
    request: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_completion_tokens": MAX_TOKENS,
    }
    if mode == "response_format":
        request["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "form", "schema": schema},
        }
    else:
        request["tools"] = [
            {"type": "function", "function": {"name": "submit_form", "parameters": schema}}
        ]
        request["tool_choice"] = "required"
    if not stream:
        reply = await aclient.chat.completions.create(**request)
        message = reply.choices[0].message
        if mode == "tool":
            assert message.tool_calls, f"no tool call: {message.content!r}"
            return message.tool_calls[0].function.arguments
        return message.content or ""
    content, arguments = "", {}
    async for chunk in await aclient.chat.completions.create(**request, stream=True):
        for choice in chunk.choices:
            content += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                arguments[call.index] = arguments.get(call.index, "") + (
                    call.function.arguments or ""
                )
    if mode == "tool":
        assert arguments, f"no tool call: {content!r}"
        return arguments[0]
    return content


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("mode", ["response_format", "tool"])
async def test_every_output_parses_and_validates(
    aclient: openai.AsyncOpenAI, mode: str, stream: bool
) -> None:
    assert len(SCHEMAS) == SCHEMA_COUNT
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(schema: dict[str, Any]) -> str | None:
        async with gate:
            return check(schema, await ask(aclient, schema, mode, stream))

    problems = await asyncio.gather(*(one(schema) for schema in SCHEMAS))
    failures = [
        f"{json.dumps(schema)[:160]}\n    {problem}"
        for schema, problem in zip(SCHEMAS, problems, strict=True)
        if problem is not None
    ]
    assert not failures, f"{len(failures)} of {SCHEMA_COUNT} failed:\n" + "\n".join(failures)
