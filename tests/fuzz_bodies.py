"""Request bodies for fuzzing the chat endpoint, and the check every answer must pass."""

from hypothesis import strategies as st

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)

FIELDS = [
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "stop",
    "stream",
    "stream_options",
    "response_format",
    "tools",
    "tool_choice",
    "thinking",
    "prompt_cache_key",
    "safety_identifier",
]
VALID = {
    "model": "moonshot-v1-8k",
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 4,
}

message_values = st.fixed_dictionaries(
    {},
    optional={
        "role": st.sampled_from(["user", "system", "assistant", "tool", "x"]) | json_values,
        "content": json_values,
        "name": json_values,
        "partial": json_values,
        "reasoning_content": json_values,
        "tool_calls": json_values,
    },
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
        assert error["type"] in {
            "invalid_request_error",
            "resource_not_found_error",
            "invalid_authentication_error",
            "engine_overloaded_error",
            # a mutated max_tokens may ask for more than the tier's TPM:
            # refused as Moonshot does, with a 429
            "rate_limit_reached_error",
        }
