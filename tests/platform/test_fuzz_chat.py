"""Fuzz the chat endpoint: whatever the body, no 5xx, no 422, always Moonshot's shape."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import PlatformClient
from tests.fuzz_bodies import check, json_values, mutated_bodies

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


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
        "/v1/chat/completions",
        content=raw,
        headers={**platform.headers(), "content-type": "application/json"},
    )
    check(response)
    if response.status_code == 200:
        json.loads(raw)  # only a real JSON body can succeed
