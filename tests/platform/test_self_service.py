"""A key holder reads their own project's limits and usage with their key
(/v1/me/limits, /v1/me/usage); another project of the same organisation
sees none of it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import httpx

from moonbase import admin
from tests.conftest import PlatformClient

MODEL = "moonshot-v1-8k"
ASK = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


async def test_a_key_sees_its_own_projects_usage_and_limits(platform: PlatformClient):
    await admin.create_project(platform.db, "default", "research", Decimal("5"), Decimal("50"))
    research = (await admin.create_key(platform.db, "default", project="research")).secret
    for _ in range(2):
        reply = await platform.http.post("/v1/chat/completions", json=ASK, headers=bearer(research))
        assert reply.status_code == 200
    own = await platform.http.post("/v1/chat/completions", json=ASK, headers=platform.headers())
    assert own.status_code == 200

    usage = await platform.http.get("/v1/me/usage", headers=bearer(research))
    assert usage.status_code == 200, usage.text
    body = usage.json()
    assert body["object"] == "list" and body["group_by"] == "day"
    (today,) = body["data"]
    assert today["group"] == datetime.now(UTC).date().isoformat()
    assert today["requests"] == 2 and today["cost"] > 0 and today["output_tokens"] == 8
    by_model = (await platform.http.get("/v1/me/usage?group_by=model&days=1",
                                        headers=bearer(research))).json()  # fmt: skip
    assert [row["group"] for row in by_model["data"]] == [MODEL]

    default_usage = (await platform.get("/v1/me/usage")).json()
    assert default_usage["data"][0]["requests"] == 1  # the other project's two are not here
    assert default_usage["project_id"] != body["project_id"]

    limits = (await platform.http.get("/v1/me/limits", headers=bearer(research))).json()
    assert limits["budgets"]["daily"] == 5.0 and limits["budgets"]["monthly"] == 50.0
    assert limits["limits"]["rpm"] > 0 and 0 <= limits["tier"] <= 5
    assert limits["project_id"] == body["project_id"]
    unlimited = (await platform.get("/v1/me/limits")).json()
    assert unlimited["budgets"]["daily"] is None


async def test_bad_queries_and_no_key(platform: PlatformClient):
    for query in ("group_by=account", "days=0", "days=1000", "days=x"):
        response = await platform.get(f"/v1/me/usage?{query}")
        assert response.status_code == 400, (query, response.text)
        assert response.json()["error"]["type"] == "invalid_request_error"
    anonymous = await platform.http.get("/v1/me/limits")
    assert anonymous.status_code == 401
    assert isinstance(anonymous, httpx.Response)
