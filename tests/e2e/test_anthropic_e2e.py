"""The Anthropic-compatible endpoint against a real ``moonbase serve`` on the
embedded model, driven by the official ``anthropic`` SDK as Claude Code and
the SDK's users drive it."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import uuid
from enum import StrEnum
from typing import Any

import anthropic
import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from tests.contract_tools import ANTHROPIC_WEATHER
from tests.e2e.server import CLIENT_TIMEOUT_S, RunningServer, openai_client
from tests.e2e.test_structured_output_e2e import SCHEMAS
from tests.files import documents

MODEL = "moonshot-v1-8k"
WEATHER = ANTHROPIC_WEATHER


class Priority(StrEnum):
    low = "low"
    high = "high"


class Ticket(BaseModel):
    """A support ticket to file."""

    title: str = Field(max_length=40)
    priority: Priority
    tags: list[str] = Field(max_length=3)
    estimate_hours: int | None = None


def anthropic_client(server: RunningServer, key: str | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=f"{server.base_url}/anthropic",
        api_key=key or server.api_key,
        max_retries=0,
        timeout=CLIENT_TIMEOUT_S,
    )


def async_anthropic_client(server: RunningServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=f"{server.base_url}/anthropic",
        api_key=server.api_key,
        max_retries=0,
        timeout=CLIENT_TIMEOUT_S,
    )


def fresh(text: str) -> list[dict[str, Any]]:
    """A prompt no earlier test sent (its prefix cache is cold)."""
    return [{"role": "user", "content": f"{text} ({uuid.uuid4().hex[:8]})"}]


def cli(server: RunningServer, *args: str) -> str:
    command = [sys.executable, "-m", "moonbase", *args, "--data-dir", str(server.data_dir)]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def test_a_plain_message_and_its_count(server: RunningServer):
    client = anthropic_client(server)
    messages = fresh("Name a colour.")
    counted = client.messages.count_tokens(model=MODEL, messages=messages)  # type: ignore[arg-type]
    message = client.messages.create(model=MODEL, max_tokens=48, messages=messages)  # type: ignore[arg-type]
    assert message.content and message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason in ("end_turn", "max_tokens")
    usage = message.usage
    print(f"count_tokens {counted.input_tokens}, billed {usage.input_tokens} "
          f"+ cache read {usage.cache_read_input_tokens}")  # fmt: skip
    assert counted.input_tokens == usage.input_tokens + (usage.cache_read_input_tokens or 0)
    assert usage.cache_read_input_tokens == 0  # a prompt never sent before
    assert 0 < usage.output_tokens <= 48


def test_streaming_with_the_sdk_helpers(server: RunningServer):
    client = anthropic_client(server)
    with client.messages.stream(
        model=MODEL,
        max_tokens=48,
        messages=fresh("Tell me about the moon."),  # type: ignore[arg-type]
    ) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed and final.content[0].text == streamed  # type: ignore[union-attr]
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0
    raw = client.messages.create(
        model=MODEL,
        max_tokens=16,
        messages=fresh("Hi."),
        stream=True,  # type: ignore[arg-type]
    )
    kinds = [event.type for event in raw]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]


def test_thinking_blocks_stream_before_the_text(server: RunningServer):
    client = anthropic_client(server)
    with client.messages.stream(
        model="kimi-k2-thinking",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=fresh("What is 12 + 30?"),  # type: ignore[arg-type]
    ) as stream:
        order = [
            event.content_block.type for event in stream if event.type == "content_block_start"
        ]
        final = stream.get_final_message()
    assert order[0] == "thinking" and "text" in order, order
    assert order.index("thinking") < order.index("text")
    thinking = final.content[0]
    assert thinking.type == "thinking" and thinking.thinking and thinking.signature


@pytest.mark.parametrize("choice", ["any", "tool"])
def test_a_tool_round_trip(server: RunningServer, choice: str):
    client = anthropic_client(server)
    tool_choice = {"type": "any"} if choice == "any" else {"type": "tool", "name": "get_weather"}
    question = {"role": "user", "content": "What is the weather in Paris?"}
    called = client.messages.create(
        model=MODEL, max_tokens=128, tools=[WEATHER], tool_choice=tool_choice,  # type: ignore[arg-type]
        messages=[question],  # type: ignore[list-item]
    )  # fmt: skip
    assert called.stop_reason == "tool_use"
    use = next(block for block in called.content if block.type == "tool_use")
    assert use.name == "get_weather" and use.id.startswith("toolu_")
    jsonschema.validate(use.input, WEATHER["input_schema"])
    answer = client.messages.create(
        model=MODEL,
        max_tokens=64,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[
            question,
            {"role": "assistant", "content": called.content},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": use.id, "content": "Sunny, 24 C"},
            ]},
        ],  # type: ignore[list-item]
    )  # fmt: skip
    assert answer.stop_reason in ("end_turn", "max_tokens")
    assert any(block.type == "text" and block.text for block in answer.content)


async def test_every_tool_input_validates_against_its_schema(server: RunningServer):
    """Ten of the structured-output test's MFJS schemas and a pydantic model's,
    as input_schema, under tool_choice any and a named tool, plain and streamed."""
    client = async_anthropic_client(server)
    schemas = [*SCHEMAS[:10], Ticket.model_json_schema()]
    gate = asyncio.Semaphore(4)

    async def one(schema: dict[str, Any], choice: dict[str, Any], stream: bool) -> str | None:
        request: dict[str, Any] = {
            "model": MODEL,
            "max_tokens": 512,
            "tools": [{"name": "fill_form", "description": "Fill in the form",
                       "input_schema": schema}],
            "tool_choice": choice,
            "messages": [{"role": "user", "content": "Fill in the form with an example."}],
        }  # fmt: skip
        async with gate:
            if stream:
                async with client.messages.stream(**request) as events:
                    message = await events.get_final_message()
            else:
                message = await client.messages.create(**request)
        uses = [block for block in message.content if block.type == "tool_use"]
        if not uses:
            return f"no tool_use ({message.stop_reason})"
        try:
            for use in uses:
                jsonschema.validate(use.input, schema)
        except jsonschema.ValidationError as error:
            return f"does not validate: {error.message}"
        return None

    runs = [
        (schema, choice, stream)
        for schema in schemas
        for choice in ({"type": "any"}, {"type": "tool", "name": "fill_form"})
        for stream in (False, True)
    ]
    problems = await asyncio.gather(*(one(*run) for run in runs))
    failed = [(run[0], problem) for run, problem in zip(runs, problems, strict=True) if problem]
    print(f"{len(runs) - len(failed)} of {len(runs)} tool inputs validate")
    assert not failed, failed


def test_an_image_block_reaches_the_media_checks(server: RunningServer):
    """The embedded model reads no images: the block is decoded and refused
    by the same media checks as an OpenAI image_url part."""
    client = anthropic_client(server)
    data = base64.b64encode(documents.png()).decode()
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}
    content = [image, {"type": "text", "text": "What is it?"}]
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(
            model=MODEL,
            max_tokens=8,
            messages=[{"role": "user", "content": content}],  # type: ignore[list-item]
        )
    assert refused.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "cannot read image input" in refused.value.body["error"]["message"]  # type: ignore[index]


def test_typed_errors(server: RunningServer):
    with pytest.raises(anthropic.AuthenticationError):
        anthropic_client(server, key="sk-not-a-key").messages.create(
            model=MODEL,
            max_tokens=4,
            messages=fresh("Hi."),  # type: ignore[arg-type]
        )
    with pytest.raises(anthropic.BadRequestError) as refused:
        anthropic_client(server).messages.create(
            model=MODEL,
            max_tokens=4,
            messages=fresh("Hi."),  # type: ignore[arg-type]
            # older SDKs' own parameter; the newest sends it as an extra
            extra_body={"temperature": 1.5},
        )
    assert "temperature" in refused.value.body["error"]["message"]  # type: ignore[index]


def test_one_account_spends_and_is_limited_across_both_apis(server: RunningServer):
    """Balance, usage records and the RPM limit count Anthropic and OpenAI
    requests together."""
    cli(server, "accounts", "create", "both-apis")
    cli(server, "accounts", "topup", "both-apis", "10")
    cli(server, "accounts", "limits", "both-apis", "--rpm", "3")
    key = cli(server, "keys", "create", "--account", "both-apis").splitlines()[0]
    claude = anthropic_client(server, key)
    gpt = openai_client(f"{server.base_url}/v1", key)

    def balance() -> float:
        response = httpx.get(
            f"{server.base_url}/v1/users/me/balance", headers={"authorization": f"Bearer {key}"}
        )
        return float(response.json()["data"]["available_balance"])

    before = balance()
    claude.messages.create(model=MODEL, max_tokens=8, messages=fresh("One."))  # type: ignore[arg-type]
    gpt.chat.completions.create(model=MODEL, max_tokens=8, messages=fresh("Two."))  # type: ignore[arg-type]
    claude.messages.create(model=MODEL, max_tokens=8, messages=fresh("Three."))  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError):
        gpt.chat.completions.create(model=MODEL, max_tokens=8, messages=fresh("Four."))  # type: ignore[arg-type]
    with pytest.raises(anthropic.RateLimitError) as limited:
        claude.messages.create(model=MODEL, max_tokens=8, messages=fresh("Five."))  # type: ignore[arg-type]
    assert "RPM: 3" in limited.value.body["error"]["message"]  # type: ignore[index]
    assert 1 <= int(limited.value.response.headers["retry-after"]) <= 60
    rows = cli(server, "usage", "--by", "account", "--account", "both-apis", "--csv")
    account_row = rows.splitlines()[1].split(",")
    assert len(rows.splitlines()) == 3  # the header, the account, the total
    assert int(account_row[1]) == 3
    cost = float(account_row[-1])
    assert cost > 0 and balance() == pytest.approx(before - cost, abs=1e-6)
