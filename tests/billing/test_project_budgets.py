"""Project budgets on a real gateway, on SQLite and PostgreSQL: 200 requests
at once against a daily budget end within one request's maximum cost of it,
and the refusal names the budget; a monthly budget holds the same way; other
projects of the account are not held back by it."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from moonbase import admin
from moonbase.billing.pricing import DEFAULT_PRICES, TokenUsage, cost_micro
from moonbase.errors import BadRequestError, NotFoundError
from moonbase.settings import Settings
from moonbase.store.database import Database
from moonbase.store.tables import UsageRecord
from tests.billing.accounts import funded_account
from tests.billing.gateway import live_gateway
from tests.billing.test_quota_and_limits import BODY, assert_429, client_for
from tests.fakes import ScriptedEngine

CONCURRENT = 200


async def project_key(db: Database, account: str, project: str, **budgets: str) -> str:
    await admin.create_project(
        db,
        account,
        project,
        Decimal(budgets["daily"]) if "daily" in budgets else None,
        Decimal(budgets["monthly"]) if "monthly" in budgets else None,
    )
    return (await admin.create_key(db, account, project=project)).secret


async def spent(db: Database, project_id: str) -> int:
    async with db.read() as session:
        total = await session.scalar(
            select(func.coalesce(func.sum(UsageRecord.cost_micro), 0)).where(
                UsageRecord.project_id == project_id
            )
        )
    return int(total or 0)


async def test_200_concurrent_requests_overshoot_a_daily_budget_by_one_request_at_most(
    database: Database, tmp_path: Path
):
    await funded_account(database, "acme", cash="100", concurrency=CONCURRENT)
    key = await project_key(database, "acme", "team-a", daily="0.01")
    other = await project_key(database, "acme", "team-b")
    project = await admin.find_project(database, "acme", "team-a")
    engine = ScriptedEngine(reply="token " * 40, delay=0.001)
    async with live_gateway(database, Settings(data_dir=tmp_path), engine) as url:
        async with await client_for(url, key) as client:
            wave = await asyncio.gather(
                *(client.post("/v1/chat/completions", json=BODY) for _ in range(CONCURRENT))
            )
            codes = [response.status_code for response in wave]
            refused = next(r for r in wave if r.status_code == 429)
            assert_429(refused, "exceeded_current_quota_error", "daily budget of ¥0.01")
            assert refused.json()["error"]["code"] == "project_budget_exceeded"
            later = await client.post("/v1/chat/completions", json=BODY)
            assert_429(later, "exceeded_current_quota_error", "team-a")
        async with await client_for(url, other) as client:  # the account's other project
            assert (await client.post("/v1/chat/completions", json=BODY)).status_code == 200
    served = codes.count(200)
    assert served >= 1 and codes.count(429) == CONCURRENT - served
    total = await spent(database, project.id)
    most = cost_micro(DEFAULT_PRICES[BODY["model"]], TokenUsage(60, 0, BODY["max_tokens"]))
    print(f"{served} served of {CONCURRENT}; spent {total} micro-yuan of a 10,000 budget")
    assert 10_000 <= total + most  # the budget was used
    assert total <= 10_000 + most  # and overshot by at most one request's maximum cost


async def test_a_monthly_budget_and_raising_it(database: Database, tmp_path: Path):
    await funded_account(database, "beta", cash="100")
    key = await project_key(database, "beta", "nightly", monthly="0.002")
    project = await admin.find_project(database, "beta", "nightly")
    async with live_gateway(database, Settings(data_dir=tmp_path), ScriptedEngine()) as url:
        async with await client_for(url, key) as client:
            statuses = []
            for _ in range(50):
                response = await client.post("/v1/chat/completions", json=BODY)
                statuses.append(response.status_code)
                if response.status_code == 429:
                    assert_429(response, "exceeded_current_quota_error", "monthly budget")
                    break
            assert statuses[0] == 200 and statuses[-1] == 429
            await admin.set_budgets(database, project.id, None, Decimal("50"))
            for _ in range(100):  # the change reaches the gateway within state_refresh_s
                if (await client.post("/v1/chat/completions", json=BODY)).status_code == 200:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("a raised budget did not let the project in")


async def test_a_budget_refuses_on_the_anthropic_path_too(database: Database, tmp_path: Path):
    await funded_account(database, "gamma", cash="100")
    key = await project_key(database, "gamma", "claude", daily="0.0001")
    async with live_gateway(database, Settings(data_dir=tmp_path), ScriptedEngine()) as url:
        async with httpx.AsyncClient(base_url=url, headers={"x-api-key": key}) as client:
            for _ in range(20):
                response = await client.post("/anthropic/v1/messages", json=BODY)
                if response.status_code != 200:
                    break
            assert response.status_code == 429
            error = response.json()["error"]
            assert error["type"] == "rate_limit_error" and "daily budget" in error["message"]


async def test_hostile_project_names_are_clean_refusals(database: Database):
    await funded_account(database, "delta")
    for name in ("bad\x00name", "x" * 1_000_000, "\ud800"):
        with pytest.raises(BadRequestError):
            await admin.create_project(database, "delta", name)
        with pytest.raises((BadRequestError, NotFoundError)):
            await admin.create_key(database, "delta", project=name)
        with pytest.raises(NotFoundError):
            await admin.find_project(database, "delta", name)
    with pytest.raises(BadRequestError):
        await admin.create_project(database, "delta", "neg", Decimal("-1"))
    assert [p.name for p in await admin.list_projects(database, "delta")] == ["default"]
