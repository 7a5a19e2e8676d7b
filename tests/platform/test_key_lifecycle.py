"""API keys' lifecycle through the admin API, in-process on the scripted
engine: restrictions checked as an operator writes them, the policy on both
APIs (OpenAI's and Anthropic's) and in batches, rotation's grace, and
last-used times written in batches rather than per request."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from moonbase.auth.key_policy import KeyPolicy, parse_networks
from moonbase.errors import AuthenticationError, BadRequestError, PermissionDeniedError
from moonbase.store.tables import ApiKey
from tests.conftest import PlatformClient
from tests.platform.test_admin_api import ADMIN, TOKEN

MODEL = "moonshot-v1-8k"
ASK = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}


def later(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def admin_post(platform: PlatformClient, path: str, body: object) -> httpx.Response:
    return await platform.http.post(f"/admin{path}", json=body, headers=ADMIN)


@pytest.fixture
async def operator(platform: PlatformClient) -> PlatformClient:
    platform.app.state.services.settings.admin_token = TOKEN  # type: ignore[attr-defined]
    return platform


async def new_key(platform: PlatformClient, **restrictions: object) -> tuple[str, str]:
    accounts = (await platform.http.get("/admin/accounts", headers=ADMIN)).json()
    response = await admin_post(platform, f"/accounts/{accounts[0]['id']}/keys", restrictions)
    assert response.status_code == 201, response.text
    return response.json()["key"], response.json()["id"]


async def chat(platform: PlatformClient, secret: str, body: dict | None = None) -> httpx.Response:
    return await platform.http.post(
        "/v1/chat/completions", json=body or ASK, headers={"authorization": f"Bearer {secret}"}
    )


@pytest.mark.parametrize(
    ("restrictions", "param"),
    [
        ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_at": "2999-01-01T00:00:00"}, "expires_at"),  # no time zone
        ({"allowed_ips": ["10.0.0.0/33"]}, "allowed_ips"),
        ({"allowed_ips": ["not an address"]}, "allowed_ips"),
        ({"allowed_ips": ["10.0.0.1"] * 65}, "allowed_ips"),
        ({"allowed_models": ["gpt-4o"]}, "allowed_models"),
        ({"allowed_models": ["moonshot-v1-8k\u0000"]}, None),
    ],
)
async def test_bad_restrictions_are_400s(
    operator: PlatformClient, restrictions: dict, param: str | None
):
    accounts = (await operator.http.get("/admin/accounts", headers=ADMIN)).json()
    response = await admin_post(operator, f"/accounts/{accounts[0]['id']}/keys", restrictions)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    if param is not None:
        assert error["param"] == param


async def test_both_apis_apply_a_keys_model_allowlist(operator: PlatformClient):
    secret, _ = await new_key(operator, allowed_models=[MODEL])
    assert (await chat(operator, secret)).status_code == 200
    other = await chat(operator, secret, {**ASK, "model": "kimi-k2-turbo-preview"})
    assert other.status_code == 403
    assert other.json()["error"]["type"] == "permission_denied_error"
    anthropic = await operator.http.post(
        "/anthropic/v1/messages",
        json={**ASK, "model": "kimi-k2-turbo-preview"},
        headers={"x-api-key": secret},
    )
    assert anthropic.status_code == 403
    assert anthropic.json()["error"]["type"] == "permission_error"


async def test_an_ip_allowlist_on_the_anthropic_path(operator: PlatformClient):
    # httpx's in-process transport calls from 127.0.0.1
    secret, _ = await new_key(operator, allowed_ips=["10.1.0.0/16"])
    response = await operator.http.post(
        "/anthropic/v1/messages", json=ASK, headers={"x-api-key": secret}
    )
    assert response.status_code == 403 and "127.0.0.1" in response.json()["error"]["message"]


async def test_disable_enable_and_rotate_take_effect_at_once_here(operator: PlatformClient):
    secret, key_id = await new_key(operator)
    assert (await chat(operator, secret)).status_code == 200
    assert (await admin_post(operator, f"/keys/{key_id}/disable", None)).status_code == 200
    disabled = await chat(operator, secret)
    assert disabled.status_code == 401 and disabled.json()["error"]["code"] == "api_key_disabled"
    assert (await admin_post(operator, f"/keys/{key_id}/enable", None)).status_code == 200
    assert (await chat(operator, secret)).status_code == 200
    rotated = await admin_post(operator, f"/keys/{key_id}/rotate", {"grace_s": 0})
    assert rotated.status_code == 200 and rotated.json()["id"] == key_id
    assert (await chat(operator, secret)).status_code == 401  # no grace
    assert (await chat(operator, rotated.json()["key"])).status_code == 200
    unknown = await admin_post(operator, "/keys/key-nope/rotate", {"grace_s": 0})
    assert unknown.status_code == 404


async def test_a_rotated_keys_old_secret_carries_the_grace_as_its_expiry(
    operator: PlatformClient,
):
    secret, key_id = await new_key(operator, expires_at=later(86400))
    rotated = await admin_post(operator, f"/keys/{key_id}/rotate", {"grace_s": 600})
    keys = operator.app.state.services.keys  # type: ignore[attr-defined]
    old = await keys.owner(secret)
    new = await keys.owner(rotated.json()["key"])
    assert old is not None and new is not None and old.key_id == new.key_id == key_id
    assert old.policy.expires_at is not None and new.policy.expires_at is not None
    assert old.policy.expires_at < new.policy.expires_at  # the grace, not the key's expiry


async def test_restrictions_are_listed_and_cleared(operator: PlatformClient):
    secret, key_id = await new_key(
        operator, allowed_ips=["127.0.0.1"], allowed_models=[MODEL], expires_at=later(3600)
    )
    listed = {k["id"]: k for k in (await operator.http.get("/admin/keys", headers=ADMIN)).json()}
    assert listed[key_id]["allowed_ips"] == ["127.0.0.1/32"]
    assert listed[key_id]["allowed_models"] == [MODEL] and listed[key_id]["expires_at"]
    cleared = await operator.http.put(f"/admin/keys/{key_id}/restrictions", json={}, headers=ADMIN)
    assert cleared.status_code == 200
    listed = {k["id"]: k for k in (await operator.http.get("/admin/keys", headers=ADMIN)).json()}
    assert listed[key_id]["allowed_models"] is None and listed[key_id]["expires_at"] is None
    other = await chat(operator, secret, {**ASK, "model": "kimi-k2-turbo-preview"})
    assert other.status_code == 200


async def test_last_used_is_written_in_batches_not_per_request(operator: PlatformClient):
    secret, key_id = await new_key(operator)
    for _ in range(3):
        assert (await chat(operator, secret)).status_code == 200

    async def last_used() -> datetime | None:
        async with operator.db.transaction() as session:
            return await session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == key_id))

    assert await last_used() is None  # nothing written yet: no write per request
    await operator.app.state.services.keys.write_last_used()  # type: ignore[attr-defined]
    used = await last_used()
    assert used is not None
    listed = {k["id"]: k for k in (await operator.http.get("/admin/keys", headers=ADMIN)).json()}
    assert listed[key_id]["last_used_at"] is not None


async def test_a_batch_line_for_a_model_the_key_may_not_use_fails_alone(
    operator: PlatformClient,
):
    secret, _ = await new_key(operator, allowed_models=["kimi-k2-turbo-preview"])
    line = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": ASK}
    upload = await operator.http.post(
        "/v1/files",
        files={"file": ("in.jsonl", json.dumps(line).encode(), "application/jsonl")},
        data={"purpose": "batch"},
        headers={"authorization": f"Bearer {secret}"},
    )
    assert upload.status_code == 200, upload.text
    batch = await operator.http.post(
        "/v1/batches",
        json={"input_file_id": upload.json()["id"], "endpoint": "/v1/chat/completions",
              "completion_window": "24h"},
        headers={"authorization": f"Bearer {secret}"},
    )  # fmt: skip
    assert batch.status_code == 200, batch.text
    worker = operator.app.state.services.worker  # type: ignore[attr-defined]
    if worker is None:
        pytest.skip("no batch worker in this process")
    for _ in range(200):
        state = await operator.http.get(
            f"/v1/batches/{batch.json()['id']}", headers={"authorization": f"Bearer {secret}"}
        )
        if state.json()["status"] in ("completed", "failed"):
            break
        await asyncio.sleep(0.1)
    body = state.json()
    assert body["status"] == "completed", body
    errors = await operator.http.get(
        f"/v1/files/{body['error_file_id']}/content", headers={"authorization": f"Bearer {secret}"}
    )
    result = json.loads(errors.text.splitlines()[0])
    assert result["response"]["status_code"] == 403
    assert result["response"]["body"]["error"]["code"] == "model_not_allowed"


def test_policy_checks():
    policy = KeyPolicy(networks=parse_networks(["10.0.0.0/8", "2001:db8::/32"]))
    policy.check_use("10.2.3.4")
    policy.check_use("::ffff:10.2.3.4")  # an IPv4 client on a dual-stack socket
    policy.check_use("2001:db8::1")
    for outside in ("11.0.0.1", None, "not-an-ip"):
        with pytest.raises(PermissionDeniedError):
            policy.check_use(outside)
    expired = KeyPolicy(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(AuthenticationError):
        expired.check_use("10.0.0.1")
    with pytest.raises(PermissionDeniedError):
        KeyPolicy(models=frozenset()).check_model(MODEL)
    with pytest.raises(BadRequestError):
        parse_networks(["999.1.1.1"])
    assert parse_networks(["10.0.0.7/8"]) == (ipaddress.ip_network("10.0.0.0/8"),)
