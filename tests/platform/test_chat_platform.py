"""The platform layer on a scripted engine: shapes, errors, usage records."""

import json

import pytest

from moonbase.store.repositories import usage as usage_repo
from tests.conftest import PlatformClient
from tests.datafiles import openapi_spec

USER = [{"role": "user", "content": "hi"}]


def assert_error(response, status: int, error_type: str, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["type"] == error_type
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    return error


def sse_events(text: str) -> list[object]:
    events = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            payload = block[len("data: ") :]
            events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


async def test_plain_completion_has_the_openai_shape_and_records_usage(platform: PlatformClient):
    response = await platform.post(
        "/v1/chat/completions",
        json={
            "model": "kimi-k2-turbo-preview",
            "messages": USER,
            "prompt_cache_key": "sess-1",
            "safety_identifier": "user-hash",
        },
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == response.headers["x-trace-id"]
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": platform.engine.reply}
    assert body["choices"][0]["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] == len(platform.engine.reply)
    await platform.settled()
    async with platform.db.transaction() as session:
        record = await usage_repo.by_request_id(session, response.headers["x-request-id"])
    assert record is not None
    assert (record.prompt_tokens, record.completion_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    assert (record.prompt_cache_key, record.safety_identifier) == ("sess-1", "user-hash")
    assert record.status == "completed"


async def test_stream_sends_role_deltas_finish_usage_and_done(platform: PlatformClient):
    response = await platform.post(
        "/v1/chat/completions",
        json={
            "model": "moonshot-v1-8k",
            "messages": USER,
            "stream": True,
            "n": 2,
            "temperature": 0.5,
            "stream_options": {"include_usage": True},
        },
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = [e for e in events[:-1] if isinstance(e, dict)]
    assert all(c["object"] == "chat.completion.chunk" and "usage" in c for c in chunks)
    assert [c["choices"][0]["delta"] for c in chunks[:2]] == [
        {"role": "assistant", "content": ""}
    ] * 2
    for index in (0, 1):
        text = "".join(
            c["choices"][0]["delta"].get("content", "")
            for c in chunks
            if c["choices"] and c["choices"][0]["index"] == index
        )
        assert text == platform.engine.reply
    finishes = [
        c["choices"][0] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]
    ]
    assert [f["finish_reason"] for f in finishes] == ["stop", "stop"]
    assert "usage" not in finishes[0] and finishes[1]["usage"]["completion_tokens"] > 0
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == finishes[1]["usage"]


async def test_auto_reports_the_model_it_picked(platform: PlatformClient):
    response = await platform.post(
        "/v1/chat/completions", json={"model": "moonshot-v1-auto", "messages": USER}
    )
    assert response.json()["model"] == "moonshot-v1-8k"


async def test_token_limit(platform: PlatformClient):
    error = assert_error(
        await platform.post(
            "/v1/chat/completions",
            json={"model": "moonshot-v1-8k", "messages": USER, "max_completion_tokens": 4090},
        ),
        400,
        "invalid_request_error",
    )
    assert error["message"] == "Your request exceeded model token limit: 4096"
    long_prompt = [{"role": "user", "content": "x" * 5000}]
    error = assert_error(
        await platform.post(
            "/v1/chat/completions", json={"model": "moonshot-v1-8k", "messages": long_prompt}
        ),
        400,
        "invalid_request_error",
    )
    assert error["message"] == "Your request exceeded model token limit: 4096"


async def test_default_max_tokens_shrinks_to_the_room_left(platform: PlatformClient):
    prompt = [{"role": "user", "content": "x" * 3500}]
    response = await platform.post(
        "/v1/chat/completions", json={"model": "moonshot-v1-8k", "messages": prompt}
    )
    assert response.status_code == 200
    sent = platform.engine.requests[-1]
    assert len(sent.prompt_tokens) + sent.max_tokens == 4096


async def test_max_tokens_deprecated_alias_and_length(platform: PlatformClient):
    response = await platform.post(
        "/v1/chat/completions",
        json={"model": "kimi-k2-0711-preview", "messages": USER, "max_tokens": 3},
    )
    body = response.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"Authorization": "Bearer sk-wrong"}, "invalid_api_key"),
        ({"Authorization": "Basic abc"}, "missing_api_key"),
    ],
)
async def test_401_without_a_valid_key(platform: PlatformClient, headers, code):
    for method, path in [
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/tokenizers/estimate-token-count"),
    ]:
        response = await platform.http.request(method, path, headers=headers, json={})
        error = assert_error(response, 401, "invalid_authentication_error")
        assert error["code"] == code


async def test_unknown_model_and_route_are_404(platform: PlatformClient):
    assert_error(
        await platform.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": USER}),
        404,
        "resource_not_found_error",
        "model",
    )
    assert_error(
        await platform.post(
            "/v1/tokenizers/estimate-token-count", json={"model": "gpt-4o", "messages": USER}
        ),
        404,
        "resource_not_found_error",
        "model",
    )
    assert_error(await platform.get("/v1/nothing-here"), 404, "resource_not_found_error")
    assert_error(
        await platform.http.delete("/v1/models", headers=platform.headers()),
        405,
        "invalid_request_error",
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"model": "kimi-k2.5", "messages": [{"role": "user", "content": ""}]},
            "messages[0].content",
        ),
        (
            {"model": "kimi-k2.5", "messages": [{"role": "user", "content": []}]},
            "messages[0].content",
        ),
        (
            {"model": "kimi-k2.5", "messages": [{"role": "robot", "content": "x"}]},
            "messages[0].role",
        ),
        ({"model": "kimi-k2.5", "messages": []}, "messages"),
        ({"model": "kimi-k2.5"}, "messages"),
        ({"messages": USER}, "model"),
        ({"model": "kimi-k2.5", "messages": USER, "temperature": "hot"}, "temperature"),
        ({"model": "kimi-k2.5", "messages": USER, "stream": "yes"}, "stream"),
        ({"model": "kimi-k2.5", "messages": USER, "stop": ["a", "b", "c", "d", "e", "f"]}, "stop"),
        ({"model": "kimi-k2.5", "messages": USER, "stop": "x" * 33}, "stop"),
        ({"model": "kimi-k2.5", "messages": USER, "thinking": {"type": "maybe"}}, "thinking.type"),
        (
            {"model": "kimi-k2.5", "messages": USER, "thinking": {"type": "enabled", "x": 1}},
            "thinking.x",
        ),
        (
            {"model": "kimi-k2.5", "messages": USER, "response_format": {"type": "yaml"}},
            "response_format.type",
        ),
        (
            {"model": "kimi-k2.5", "messages": USER, "response_format": {"type": "json_schema"}},
            "response_format.json_schema",
        ),
        (
            {
                "model": "kimi-k2.5",
                "messages": USER,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "x",
                        # a property named like a keyword: refused at the server's level
                        "schema": {"type": "object", "properties": {"required": {}}},
                    },
                },
            },
            "response_format.json_schema.schema",
        ),
        (
            {
                "model": "kimi-k2.5",
                "messages": USER,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "array", "items": {}}},
                },
            },
            "response_format.json_schema.schema",
        ),
        (
            {"model": "kimi-k2.5", "messages": USER, "max_completion_tokens": 0},
            "max_completion_tokens",
        ),
    ],
)
async def test_bad_requests_name_the_parameter(platform: PlatformClient, body, param):
    response = await platform.post("/v1/chat/completions", json=body)
    assert_error(response, 400, "invalid_request_error", param)


async def test_media_parts_are_refused_on_a_text_only_engine(platform: PlatformClient):
    body = {
        "model": "kimi-k2.5",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            }
        ],
    }
    error = assert_error(
        await platform.post("/v1/chat/completions", json=body),
        400,
        "invalid_request_error",
        "messages[0].content[1]",
    )
    assert "supports_image_in" in error["message"]


async def test_malformed_json_and_non_objects(platform: PlatformClient):
    for raw in [b"{", b"[]", b"null", b"42", b'"text"', b"", b"\xff\xfe"]:
        response = await platform.http.post(
            "/v1/chat/completions",
            content=raw,
            headers={**platform.headers(), "content-type": "application/json"},
        )
        assert_error(response, 400, "invalid_request_error")


async def test_unknown_fields_are_ignored_and_json_is_read_without_a_content_type(
    platform: PlatformClient,
):
    body = json.dumps(
        {
            "model": "kimi-k2.5",
            "messages": USER,
            "reasoning_effort": "high",
            "vendor_thing": {"a": 1},
        }
    )
    response = await platform.http.post(
        "/v1/chat/completions",
        content=body,
        headers={**platform.headers(), "content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text


async def test_assistant_turns_with_reasoning_and_no_content_are_accepted(
    platform: PlatformClient,
):
    messages = [
        *USER,
        {"role": "assistant", "reasoning_content": "thought"},
        {"role": "assistant", "content": None, "reasoning_content": "more"},
        {"role": "user", "content": [{"type": "text", "text": "again"}]},
    ]
    response = await platform.post(
        "/v1/chat/completions", json={"model": "kimi-k2-thinking", "messages": messages}
    )
    assert response.status_code == 200, response.text


async def test_models_list_reports_what_is_served(platform: PlatformClient):
    body = (await platform.get("/v1/models")).json()
    assert body["object"] == "list" and len(body["data"]) == 14
    for card in body["data"]:
        assert set(card) == {
            "id",
            "object",
            "created",
            "owned_by",
            "context_length",
            "supports_image_in",
            "supports_video_in",
            "supports_reasoning",
        }
        # the scripted engine has a 4096 context and no media input
        assert card["context_length"] == 4096
        assert not card["supports_image_in"] and not card["supports_video_in"]
    reasoning = {c["id"] for c in body["data"] if c["supports_reasoning"]}
    assert reasoning == {"kimi-k2-thinking", "kimi-k2-thinking-turbo", "kimi-k2.5", "kimi-k2.6"}


async def test_estimate_matches_prompt_tokens(platform: PlatformClient):
    messages = [{"role": "system", "content": "be brief"}, *USER]
    estimate = await platform.post(
        "/v1/tokenizers/estimate-token-count", json={"model": "kimi-k2.5", "messages": messages}
    )
    completion = await platform.post(
        "/v1/chat/completions", json={"model": "kimi-k2.5", "messages": messages}
    )
    assert estimate.json() == {
        "data": {"total_tokens": completion.json()["usage"]["prompt_tokens"]}
    }


@pytest.mark.parametrize("stream", [False, True])
async def test_an_overloaded_engine_is_a_429_even_for_streams(platform: PlatformClient, stream):
    platform.engine.overloaded = True
    response = await platform.post(
        "/v1/chat/completions", json={"model": "kimi-k2.5", "messages": USER, "stream": stream}
    )
    assert_error(response, 429, "engine_overloaded_error")
    assert response.headers["retry-after"] == "1"
    await platform.settled()
    async with platform.db.transaction() as session:
        assert await usage_repo.by_request_id(session, response.headers["x-request-id"]) is None


async def test_balance_matches_the_specs_schema(platform: PlatformClient):
    import jsonschema

    spec = openapi_spec()
    schema = spec["components"]["schemas"]["BalanceResponse"]
    response = await platform.get("/v1/users/me/balance")
    assert response.status_code == 200
    jsonschema.validate(response.json(), schema)
    data = response.json()["data"]
    # the owner's starting voucher: ¥100 by default
    assert data == {"available_balance": 100.0, "voucher_balance": 100.0, "cash_balance": 0.0}
    await platform.post("/v1/chat/completions", json={"model": "kimi-k2.5", "messages": USER})
    after = (await platform.get("/v1/users/me/balance")).json()["data"]
    assert after["voucher_balance"] < 100.0 and after["cash_balance"] == 0.0


async def test_response_formats_reach_the_engine_as_constraints(platform: PlatformClient):
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    formats = [
        ({"type": "text"}, None),
        ({"type": "json_object"}, {"schema": None}),
        (
            {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
            {"schema": schema},
        ),
        (
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "s",
                    "strict": False,
                    "schema": {"type": "object", "oneOf": []},
                },
            },
            {"schema": None},
        ),
    ]
    for response_format, expected in formats:
        response = await platform.post(
            "/v1/chat/completions",
            json={"model": "kimi-k2.5", "messages": USER, "response_format": response_format},
        )
        assert response.status_code == 200, response.text
        constraint = platform.engine.requests[-1].constraint
        assert (None if constraint is None else {"schema": constraint.schema}) == expected


TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.mark.parametrize("stream", [False, True])
async def test_auto_tool_choice_turns_a_written_call_into_tool_calls(
    platform: PlatformClient, stream: bool
):
    platform.engine.reply = (
        'Let me check. <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}'
        "</tool_call>"
    )
    body = {"model": "kimi-k2.5", "messages": USER, "tools": [TOOL], "stream": stream}
    response = await platform.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    if stream:
        chunks = [e for e in sse_events(response.text) if isinstance(e, dict)]
        deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
        calls = [tc for d in deltas for tc in d.get("tool_calls", [])]
        content = "".join(d.get("content") or "" for d in deltas)
        finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1]
    else:
        choice = response.json()["choices"][0]
        calls, content, finish = (
            choice["message"]["tool_calls"],
            choice["message"]["content"],
            choice["finish_reason"],
        )
    assert finish == "tool_calls"
    assert content == "Let me check."
    assert [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls
    ] == [("functions.get_weather:0", "get_weather", {"city": "Paris"})]
    # the tools were described to the model in the system prompt
    prompt = "".join(chr(t) for t in platform.engine.requests[-1].prompt_tokens)
    assert "get_weather" in prompt and "<tool_call>" in prompt


async def test_without_a_call_the_reply_stays_text(platform: PlatformClient):
    body = {"model": "kimi-k2.5", "messages": USER, "tools": [TOOL]}
    choice = (await platform.post("/v1/chat/completions", json=body)).json()["choices"][0]
    assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]
    assert choice["message"]["content"] == platform.engine.reply


async def test_thinking_runs_a_reasoning_phase_then_answers(platform: PlatformClient):
    before = len(platform.engine.requests)
    body = {"model": "kimi-k2-thinking", "messages": USER, "max_tokens": 80}
    response = (await platform.post("/v1/chat/completions", json=body)).json()
    reasoning_request, answer_request = platform.engine.requests[before:]
    to_text = "".join
    reasoning_prompt = to_text(chr(t) for t in reasoning_request.prompt_tokens)
    answer_prompt = to_text(chr(t) for t in answer_request.prompt_tokens)
    assert "step by step" in reasoning_prompt
    message = response["choices"][0]["message"]
    reply = platform.engine.reply
    assert reasoning_request.max_tokens == 40  # half the budget at most
    assert message["reasoning_content"] == reply
    assert message["reasoning_content"] in answer_prompt  # the answer is conditioned on it
    assert message["content"] == reply
    assert answer_request.max_tokens == 80 - len(reply)
    usage = response["usage"]
    assert usage["completion_tokens"] == len(message["reasoning_content"]) + len(reply)
    estimate = await platform.post(
        "/v1/tokenizers/estimate-token-count", json={"model": "kimi-k2-thinking", "messages": USER}
    )
    assert estimate.json()["data"]["total_tokens"] == usage["prompt_tokens"]
