"""The request shapes real client libraries send, against the real embedded model.

Each library completes a chat, a stream and a tool round trip (call, tool
result, final answer) with its own types. The tool call is forced (required
or a named function), because a 135M model left to choose rarely calls.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.server import RunningServer

MODEL = "moonshot-v1-8k"
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "enum": ["Beijing", "Shanghai"]}},
    "required": ["city"],
}


def base_url(server: RunningServer) -> str:
    return f"{server.base_url}/v1"


# -- pydantic-ai (MoonshotAI provider) ------------------------------------------


def pydantic_ai_model(server: RunningServer):
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.moonshotai import MoonshotAIProvider

    provider = MoonshotAIProvider(api_key=server.api_key, base_url=base_url(server))
    return OpenAIChatModel(MODEL, provider=provider)


async def test_pydantic_ai_chat_and_stream(server: RunningServer) -> None:
    from pydantic_ai import Agent
    from pydantic_ai.settings import ModelSettings

    agent = Agent(pydantic_ai_model(server), model_settings=ModelSettings(max_tokens=16))
    result = await agent.run("Say hello.")
    assert result.output.strip()
    assert result.usage.output_tokens > 0
    async with agent.run_stream("Count to three.") as streamed:
        pieces = [piece async for piece in streamed.stream_text(delta=True)]
    assert "".join(pieces).strip() and len(pieces) >= 2


async def test_pydantic_ai_tool_round_trip(server: RunningServer) -> None:
    from pydantic_ai import ModelRequest, ToolReturnPart
    from pydantic_ai.direct import model_request
    from pydantic_ai.messages import ToolCallPart
    from pydantic_ai.models import ModelRequestParameters
    from pydantic_ai.settings import ModelSettings
    from pydantic_ai.tools import ToolDefinition

    model = pydantic_ai_model(server)
    weather = ToolDefinition(
        name="get_weather", description="Weather of a city", parameters_json_schema=WEATHER_SCHEMA
    )
    settings = ModelSettings(max_tokens=48)
    asked = ModelRequest.user_text_prompt("What is the weather in Beijing?")
    # pydantic-ai's Moonshot profile never sends tool_choice "required" (the
    # public docs once said Kimi lacks it); extra_body forces the call.
    called = await model_request(
        model,
        [asked],
        model_settings=ModelSettings(max_tokens=48, extra_body={"tool_choice": "required"}),
        model_request_parameters=ModelRequestParameters(function_tools=[weather]),
    )
    calls = [part for part in called.parts if isinstance(part, ToolCallPart)]
    assert calls, called.parts
    for number, call in enumerate(calls):
        assert call.tool_name == "get_weather"
        assert call.args_as_dict()["city"] in {"Beijing", "Shanghai"}
        assert call.tool_call_id == f"functions.get_weather:{number}"
    result = ModelRequest(
        parts=[
            ToolReturnPart("get_weather", "Sunny, 25 C", tool_call_id=call.tool_call_id)
            for call in calls
        ]
    )
    answered = await model_request(
        model,
        [asked, called, result],
        model_settings=settings,
        model_request_parameters=ModelRequestParameters(function_tools=[weather]),
    )
    assert answered.text and answered.text.strip()


# -- LangChain (langchain-moonshot) ----------------------------------------------


def langchain_model(server: RunningServer, max_tokens: int = 24):
    from langchain_moonshot import ChatMoonshot

    return ChatMoonshot(
        model=MODEL, api_key=server.api_key, base_url=base_url(server), max_tokens=max_tokens
    )


def test_langchain_chat_and_stream(server: RunningServer) -> None:
    chat = langchain_model(server)
    reply = chat.invoke("Say hello.")
    assert isinstance(reply.content, str) and reply.content.strip()
    assert reply.usage_metadata and reply.usage_metadata["output_tokens"] > 0
    chunks = list(chat.stream("Count to three."))
    assert len(chunks) >= 2
    assert "".join(str(chunk.content) for chunk in chunks).strip()


def test_langchain_tool_round_trip(server: RunningServer) -> None:
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool

    @tool
    def get_weather(city: str) -> str:
        """Weather of a city."""
        return f"Sunny in {city}"

    chat = langchain_model(server, max_tokens=64)
    forced = chat.bind_tools([get_weather], tool_choice="required")
    question = HumanMessage("What is the weather in Beijing?")
    called = forced.invoke([question])
    assert called.tool_calls
    for call in called.tool_calls:
        assert call["name"] == "get_weather" and isinstance(call["args"]["city"], str)
    streamed = None
    for chunk in forced.stream([question]):
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed is not None and streamed.tool_calls[0]["name"] == "get_weather"
    results = [
        ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])
        for call in called.tool_calls
    ]
    answer = chat.invoke([question, called, *results])
    assert isinstance(answer.content, str) and answer.content.strip()


# -- LiteLLM (moonshot/ provider) ------------------------------------------------


@pytest.fixture
def litellm_args(server: RunningServer) -> dict[str, object]:
    return {
        "model": f"moonshot/{MODEL}",
        "api_base": base_url(server),
        "api_key": server.api_key,
        "max_tokens": 48,
    }


def test_litellm_chat_and_stream(litellm_args: dict[str, object]) -> None:
    import litellm

    reply = litellm.completion(messages=[{"role": "user", "content": "Say hello."}], **litellm_args)
    assert reply.choices[0].message.content.strip()
    assert reply.usage.completion_tokens > 0
    chunks = list(
        litellm.completion(
            messages=[{"role": "user", "content": "Count to three."}], stream=True, **litellm_args
        )
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text.strip() and len(chunks) >= 2


def test_litellm_tool_round_trip(litellm_args: dict[str, object]) -> None:
    import litellm

    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather of a city",
                "parameters": WEATHER_SCHEMA,
            },
        }
    ]
    # LiteLLM rewrites tool_choice "required" for Moonshot into a user message;
    # a named function passes through and forces the call.
    choice = {"type": "function", "function": {"name": "get_weather"}}
    messages: list[dict[str, object]] = [{"role": "user", "content": "Weather in Shanghai?"}]
    called = litellm.completion(messages=messages, tools=tools, tool_choice=choice, **litellm_args)
    assert called.choices[0].finish_reason == "tool_calls"
    calls = called.choices[0].message.tool_calls
    assert calls
    for call in calls:
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments)["city"] in {"Beijing", "Shanghai"}
    messages.append(called.choices[0].message.model_dump())
    for call in calls:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "Rainy, 18 C"})
    answer = litellm.completion(messages=messages, tools=tools, **litellm_args)
    assert answer.choices[0].message.content.strip()
