"""/v1/organization/usage/completions and /v1/organization/costs: one-day
buckets from the rollups, grouped as asked, as OpenAI's clients read them; a
member sees their projects only."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from moonbase import admin
from tests.conftest import BOTH_DATABASES, empty_database
from tests.organization.harness import Org, organisations

CHAT = {"model": "moonshot-v1-8k", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.fixture(params=BOTH_DATABASES)
async def org(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Org]:
    async with empty_database(request.param, tmp_path) as db:
        await db.migrate()
        async with organisations(db, tmp_path) as built:
            yield built


async def _spend(org: Org, project: str, times: int) -> str:
    issued = await admin.create_key(org.db, "default", project=project)
    for _ in range(times):
        reply = await org.http.post(
            "/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {issued.secret}"}
        )
        assert reply.status_code == 200, reply.text
    return issued.id


async def test_usage_and_costs_by_day_project_and_model(org: Org):
    p1_key = await _spend(org, org.p1, 3)
    await _spend(org, org.p2, 2)
    start = int(time.time()) - 86400
    usage = await org.http.get(
        f"/v1/organization/usage/completions?start_time={start}&group_by[]=project_id"
        "&group_by[]=model",
        headers=org.headers("viewer"),
    )
    assert usage.status_code == 200, usage.text
    page = usage.json()
    assert page["object"] == "page" and len(page["data"]) == 2  # yesterday and today
    yesterday, today = page["data"]
    assert yesterday["results"] == [] and today["end_time"] - today["start_time"] == 86400
    by_project = {r["project_id"]: r for r in today["results"]}
    assert by_project[org.p1]["num_model_requests"] == 3
    assert by_project[org.p2]["num_model_requests"] == 2
    assert by_project[org.p1]["output_tokens"] == 12 and by_project[org.p1]["input_tokens"] > 0
    assert {r["model"] for r in today["results"]} == {"moonshot-v1-8k"}

    mine = await org.http.get(
        f"/v1/organization/usage/completions?start_time={start}&group_by=project_id",
        headers=org.headers("member"),
    )
    assert [r["project_id"] for r in mine.json()["data"][-1]["results"]] == [org.p1]
    one_key = await org.http.get(
        f"/v1/organization/usage/completions?start_time={start}&api_key_ids={p1_key}"
        "&group_by=api_key_id",
        headers=org.headers("owner"),
    )
    (row,) = one_key.json()["data"][-1]["results"]
    assert row["api_key_id"] == p1_key and row["num_model_requests"] == 3

    costs = await org.http.get(
        f"/v1/organization/costs?start_time={start}&group_by=line_item",
        headers=org.headers("admin"),
    )
    assert costs.status_code == 200, costs.text
    (cost,) = costs.json()["data"][-1]["results"]
    assert cost["line_item"] == "moonshot-v1-8k" and cost["amount"]["currency"] == "cny"
    assert cost["amount"]["value"] > 0
    total = await org.http.get(
        f"/v1/organization/costs?start_time={start}", headers=org.headers("owner")
    )
    (whole,) = total.json()["data"][-1]["results"]
    assert whole["amount"]["value"] == pytest.approx(cost["amount"]["value"])


async def test_pages_of_days_and_bad_queries(org: Org):
    start = int(time.time()) - 10 * 86400
    first = await org.http.get(
        f"/v1/organization/usage/completions?start_time={start}&limit=4",
        headers=org.headers("owner"),
    )
    page = first.json()
    assert len(page["data"]) == 4 and page["has_more"] is True
    following = await org.http.get(
        f"/v1/organization/usage/completions?start_time={start}&limit=31&page={page['next_page']}",
        headers=org.headers("owner"),
    )
    assert following.json()["data"][0]["start_time"] == page["data"][-1]["end_time"]
    for query in (
        "",
        "start_time=x",
        f"start_time={start}&bucket_width=1h",
        f"start_time={start}&group_by=user_id",
        f"start_time={start}&limit=32",
        f"start_time={start}&page=nope",
        "start_time=99999999999999",
        f"start_time={start}&project_ids=",
        f"start_time={start}&api_key_ids[]=",
    ):
        reply = await org.http.get(
            f"/v1/organization/usage/completions?{query}", headers=org.headers("owner")
        )
        assert reply.status_code == 400, (query, reply.text)
        assert reply.json()["error"]["type"] == "invalid_request_error"
    assert (await org.http.get(f"/v1/organization/costs?start_time={start}")).status_code == 401


async def test_filters_by_project_key_and_model_never_widen_what_a_member_sees(org: Org):
    p1_key = await _spend(org, org.p1, 2)
    p2_key = await _spend(org, org.p2, 1)
    start = int(time.time()) - 86400

    async def today(who: str, query: str, path: str = "usage/completions") -> list[dict]:  # type: ignore[type-arg]
        reply = await org.http.get(
            f"/v1/organization/{path}?start_time={start}&{query}", headers=org.headers(who)
        )
        assert reply.status_code == 200, reply.text
        return list(reply.json()["data"][-1]["results"])

    both = f"project_ids={org.p1}&project_ids={org.p2}&group_by=project_id"
    assert {r["project_id"]: r["num_model_requests"] for r in await today("owner", both)} == {
        org.p1: 2, org.p2: 1,
    }  # fmt: skip
    assert [r["project_id"] for r in await today("member", both)] == [org.p1]
    assert await today("member", f"project_ids={org.p2}") == []  # not theirs: nothing
    assert await today("member", f"api_key_ids={p2_key}") == []
    (by_key,) = await today("owner", f"api_key_ids[]={p2_key}&group_by=api_key_id")
    assert by_key["api_key_id"] == p2_key and by_key["num_model_requests"] == 1
    assert await today("owner", "models=kimi-latest") == []
    (everything,) = await today("owner", "models=moonshot-v1-8k")
    assert everything["num_model_requests"] == 3 and everything["project_id"] is None
    (cost,) = await today("member", f"project_ids={org.p1}&group_by=project_id", "costs")
    assert cost["project_id"] == org.p1 and cost["amount"]["value"] > 0
    assert p1_key != p2_key
