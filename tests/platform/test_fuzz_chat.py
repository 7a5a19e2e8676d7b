"""Fuzz the chat endpoint: whatever the body, no 5xx, no 422, always Moonshot's shape."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import PlatformClient

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)

FIELDS = ["model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p",
          "n", "presence_penalty", "frequency_penalty", "stop", "stream", "stream_options",
          "response_format", "tools", "tool_choice", "thinking", "prompt_cache_key",
          "safety_identifier"]
VALID = {"model": "moonshot-v1-8k", "messages": [{"role": "user", "content": "hi"}],
         "max_tokens": 4}

message_values = st.fixed_dictionaries(
    {},
    optional={"role": st.sampled_from(["user", "system", "assistant", "tool", "x"]) | json_values,
              "content": json_values, "name": json_values, "partial": json_values,
              "reasoning_content": json_values, "tool_calls": json_values},
)


@st.composite
def mutated_bodies(draw):
    body = dict(VALID)
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        action = draw(st.sampled_from(["drop", "random", "messages"]))
        if action == "drop":
            body.pop(field, None)
        elif action == "messages" and field == "messages":
            body[field] = draw(st.lists(message_values, max_size=3))
        else:
            body[field] = draw(json_values)
    if body.get("stream") is True:
        body["stream"] = False  # streams are checked by their own tests
    return body


def check(response):
    assert response.status_code < 500, response.text
    assert response.status_code != 422, response.text
    if response.status_code != 200:
        error = response.json()["error"]
        assert isinstance(error["message"], str) and error["message"]
        assert error["type"] in {"invalid_request_error", "resource_not_found_error",
                                 "invalid_authentication_error", "engine_overloaded_error"}


FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(body=mutated_bodies())
async def test_mutated_bodies(platform: PlatformClient, body):
    check(await platform.post("/v1/chat/completions", json=body))


@FUZZ
@given(body=json_values)
async def test_arbitrary_json(platform: PlatformClient, body):
    check(await platform.post("/v1/chat/completions", json=body))


@FUZZ
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
async def test_arbitrary_bytes(platform: PlatformClient, raw):
    response = await platform.http.post(
        "/v1/chat/completions", content=raw,
        headers={**platform.headers(), "content-type": "application/json"})
    check(response)
    if response.status_code == 200:
        json.loads(raw)  # only a real JSON body can succeed
