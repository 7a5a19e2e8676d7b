"""A project's model allowlist and rate limits, on SQLite and PostgreSQL: set
through the admin API (audited), refused exactly like a key's allowlist (403
``model_not_allowed``) on every path that names a model, counted beside the
organisation's limits (429s naming the project), never above them, and
shown to the project's keys in /v1/me/limits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from moonbase import admin
from moonbase.app import create_app
from moonbase.auth.project_policy import ProjectLimits
from moonbase.errors import BadRequestError
from moonbase.settings import EMBEDDED_ENGINE, Settings
from moonbase.store.database import Database
from tests.billing.accounts import funded_account
from tests.fakes import ScriptedEngine

TOKEN = "admin-" + "p" * 32
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
ALLOWED, OTHER = "moonshot-v1-8k", "kimi-k2-turbo-preview"
ORG_CONCURRENCY = 2


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def ask(model: str = ALLOWED) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}


@dataclass
class Gateway:
    http: httpx.AsyncClient
    default: dict[str, str]  # a key of the organisation's default project
    lab: dict[str, str]  # a key of its project "lab"
    lab_id: str
    engine: ScriptedEngine
    db: Database

    async def chat(self, who: dict[str, str], model: str = ALLOWED) -> httpx.Response:
        return await self.http.post("/v1/chat/completions", headers=who, json=ask(model))

    async def put(self, what: str, body: Any) -> httpx.Response:
        # json.dumps escapes a lone surrogate, as a hostile client may send it
        headers = {**ADMIN, "content-type": "application/json"}
        path = f"/admin/projects/{self.lab_id}/{what}"
        return await self.http.put(path, content=json.dumps(body), headers=headers)


@pytest.fixture
async def gateway(database: Database, tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = Settings(data_dir=tmp_path, admin_token=TOKEN)
    _, key = await funded_account(database, "acme", cash="100", concurrency=ORG_CONCURRENCY)
    lab = await admin.create_project(database, "acme", "lab")
    lab_key = await admin.create_key(database, "acme", project="lab")
    engine = ScriptedEngine(reply="x" * 8)
    app = create_app(settings, engines={EMBEDDED_ENGINE: engine}, db=database)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://m") as http:
            yield Gateway(http, bearer(key), bearer(lab_key.secret), lab.id, engine, database)


def assert_refused_model(response: httpx.Response, *words: str) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "permission_denied_error",
        "model_not_allowed",
        "model",
    )
    for word in words:
        assert word in error["message"]


async def test_a_projects_allowlist_refuses_like_a_keys(gateway: Gateway):
    put = await gateway.put("models", {"allowed_models": [ALLOWED]})
    assert put.status_code == 200, put.text
    assert put.json()["allowed_models"] == [ALLOWED]
    assert (await gateway.chat(gateway.lab)).status_code == 200
    assert_refused_model(await gateway.chat(gateway.lab, OTHER), "project lab", OTHER, ALLOWED)
    assert (await gateway.chat(gateway.default, OTHER)).status_code == 200  # another project
    # A key's own refusal has the same shape.
    own = await admin.create_key(gateway.db, "acme", restrictions=admin.KeyRestrictions(
        allowed_models=[OTHER]))  # fmt: skip
    assert_refused_model(await gateway.chat(bearer(own.secret)), "API key", ALLOWED)
    # Token counts and the Anthropic path are refused too.
    count = await gateway.http.post(
        "/v1/tokenizers/estimate-token-count", headers=gateway.lab,
        json={"model": OTHER, "messages": [{"role": "user", "content": "Hi"}]},
    )  # fmt: skip
    assert_refused_model(count, "project lab")
    anthropic = await gateway.http.post(
        "/anthropic/v1/messages", headers={"x-api-key": gateway.lab["Authorization"][7:]},
        json={"model": OTHER, "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]},
    )  # fmt: skip
    assert anthropic.status_code == 403 and "project lab" in anthropic.text
    me = (await gateway.http.get("/v1/me/limits", headers=gateway.lab)).json()
    assert me["allowed_models"] == [ALLOWED]
    assert (await gateway.http.get("/v1/me/limits", headers=gateway.default)).json()[
        "allowed_models"
    ] is None
    # Cleared through the admin API: this gateway lets the project in at once.
    assert (await gateway.put("models", {"allowed_models": None})).status_code == 200
    assert (await gateway.chat(gateway.lab, OTHER)).status_code == 200


async def test_the_allowlist_is_the_intersection_of_the_keys_and_the_projects(gateway: Gateway):
    await gateway.put("models", {"allowed_models": [ALLOWED]})
    only_other = admin.KeyRestrictions(allowed_models=[OTHER])
    narrow = await admin.create_key(gateway.db, "acme", project="lab", restrictions=only_other)
    assert_refused_model(await gateway.chat(bearer(narrow.secret), ALLOWED), "API key")
    assert_refused_model(await gateway.chat(bearer(narrow.secret), OTHER), "project lab")


async def test_a_change_made_elsewhere_arrives_within_state_refresh_s(gateway: Gateway):
    assert (await gateway.chat(gateway.lab, OTHER)).status_code == 200  # cached now
    # As the CLI does: straight to the database, not through this gateway.
    await admin.set_project_models(gateway.db, gateway.lab_id, [ALLOWED])
    for _ in range(200):
        if (await gateway.chat(gateway.lab, OTHER)).status_code == 403:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the project's allowlist never reached the gateway")


async def test_project_rate_limits_count_beside_the_organisations(gateway: Gateway):
    too_high = await gateway.put("limits", {"rpm": 10_001})  # tier 5: 10,000 RPM
    assert too_high.status_code == 400
    error = too_high.json()["error"]
    assert error["param"] == "rpm" and "10000" in error["message"] and "tier 5" in error["message"]
    assert (await gateway.put("limits", {"concurrency": ORG_CONCURRENCY + 1})).status_code == 400
    put = await gateway.put("limits", {"rpm": 2})
    assert put.status_code == 200 and put.json()["limits"]["rpm"] == 2
    for _ in range(2):
        assert (await gateway.chat(gateway.lab)).status_code == 200
    refused = await gateway.chat(gateway.lab)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_reached_error" and error["code"] == "project_rpm_limit"
    assert "Your project lab request reached max RPM: 2" in error["message"]
    assert int(refused.headers["retry-after"]) >= 1
    assert (await gateway.chat(gateway.default)).status_code == 200  # the organisation is not
    me = (await gateway.http.get("/v1/me/limits", headers=gateway.lab)).json()
    assert me["project_limits"] == {"concurrency": None, "rpm": 2, "tpm": None, "tpd": None}
    assert me["limits"]["rpm"] == 10_000  # the organisation's, unchanged
    with pytest.raises(BadRequestError, match="tpm"):
        await admin.set_project_limits(gateway.db, gateway.lab_id, ProjectLimits(tpm=10**9))


async def in_flight(engine: ScriptedEngine, count: int) -> None:
    for _ in range(1000):
        if len(engine.requests) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} requests never reached the engine together")


async def test_project_concurrency_and_a_refusal_by_the_organisation(gateway: Gateway):
    assert (await gateway.put("limits", {"concurrency": 1})).status_code == 200
    gateway.engine.delay = 0.1  # each request holds its place for about a second
    first = asyncio.create_task(gateway.chat(gateway.lab))
    await in_flight(gateway.engine, 1)
    second = await gateway.chat(gateway.lab)
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "project_concurrency_limit"
    assert (await first).status_code == 200
    # The organisation full (two requests of its default project): the project's
    # request passes its own limit, is refused by the organisation's, and gives
    # its project's place back.
    busy = [asyncio.create_task(gateway.chat(gateway.default)) for _ in range(ORG_CONCURRENCY)]
    await in_flight(gateway.engine, 1 + ORG_CONCURRENCY)
    refused = await gateway.chat(gateway.lab)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "concurrency_limit" and "Your account" in error["message"]
    assert [r.status_code for r in await asyncio.gather(*busy)] == [200] * ORG_CONCURRENCY
    gateway.engine.delay = 0
    assert (await gateway.chat(gateway.lab)).status_code == 200  # its place was given back


async def test_admin_routes_are_audited_and_refuse_bad_input(gateway: Gateway):
    await gateway.put("models", {"allowed_models": [ALLOWED, OTHER]})
    await gateway.put("limits", {"rpm": 5, "tpd": 1000})
    events = (await gateway.http.get("/admin/audit?account=acme", headers=ADMIN)).json()
    by_action = {event["action"]: event for event in events}
    models = by_action["project.models"]
    assert models["target"] == gateway.lab_id and models["actor"] == "admin-api"
    assert models["changes"]["allowed_models"] == [None, sorted([ALLOWED, OTHER])]
    assert by_action["project.limits"]["changes"] == {"rpm": [None, 5], "tpd": [None, 1000]}
    listed = (await gateway.http.get("/admin/accounts/acme/projects", headers=ADMIN)).json()
    lab = next(p for p in listed if p["id"] == gateway.lab_id)
    assert lab["limits"]["rpm"] == 5 and lab["allowed_models"] == sorted([ALLOWED, OTHER])

    for what, body in [
        ("models", {"allowed_models": ["gpt-4"]}),
        ("models", {"allowed_models": "moonshot-v1-8k"}),
        ("models", {"allowed_models": ["bad\x00model"]}),
        ("models", {"allowed_models": ["\ud800"]}),
        ("models", {"allowed_models": ["m" * 100_000]}),
        ("models", {}),
        ("limits", {"rpm": "5"}),
        ("limits", {"rpm": 0}),
        ("limits", {"rpm": 5.5}),
        ("limits", {"tpm": 2**80}),
        ("limits", {"burst": 5}),
        ("limits", [1, 2]),
    ]:
        response = await gateway.put(what, body)
        assert response.status_code == 400, (what, body, response.text)
        assert response.json()["error"]["type"] == "invalid_request_error"
    for project, status in (("proj-nope", 404), ("x" * 1000, 404), ("bad%00id", 400)):
        path = f"/admin/projects/{project}/limits"
        missing = await gateway.http.put(path, json={"rpm": 1}, headers=ADMIN)
        assert missing.status_code == status, missing.text
        assert "error" in missing.json()  # Moonshot-shaped (a NUL: refused at the edge)
