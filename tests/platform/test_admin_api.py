"""The admin API: its own token, accounts, keys, money, limits, usage reports."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from moonbase import admin
from moonbase.app import create_app
from moonbase.settings import EMBEDDED_ENGINE, Settings
from moonbase.store.database import Database
from tests.fakes import ScriptedEngine

TOKEN = "admin-" + "t" * 32


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(data_dir=tmp_path, admin_token=TOKEN)
    db = Database(settings.resolved_database_url)
    await db.migrate()
    await admin.bootstrap(db, settings.billing)
    app = create_app(settings, engines={EMBEDDED_ENGINE: ScriptedEngine()}, db=db)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://moonbase") as client:
            yield client
    await db.dispose()


ADMIN = {"Authorization": f"Bearer {TOKEN}"}


async def test_admin_token_is_required(http: httpx.AsyncClient):
    for headers in ({}, {"Authorization": "Bearer nope"}):
        response = await http.get("/admin/accounts", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "invalid_authentication_error"


async def test_admin_api_is_off_without_a_token(tmp_path: Path):
    settings = Settings(data_dir=tmp_path)
    app = create_app(settings, engines={EMBEDDED_ENGINE: ScriptedEngine()})
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://m") as client:
            response = await client.get("/admin/accounts", headers=ADMIN)
    assert response.status_code == 404


async def test_accounts_money_limits_keys_and_usage(http: httpx.AsyncClient):
    created = await http.post("/admin/accounts", json={"name": "acme"}, headers=ADMIN)
    assert created.status_code == 201
    account = created.json()
    assert (account["tier"], account["cash_balance"]) == (0, 0.0)
    duplicate = await http.post("/admin/accounts", json={"name": "acme"}, headers=ADMIN)
    assert duplicate.status_code == 400

    key = (
        await http.post(f"/admin/accounts/{account['id']}/keys", json={"name": "ci"}, headers=ADMIN)
    ).json()
    user = {"Authorization": f"Bearer {key['key']}"}
    body = {"model": "kimi-k2.5", "messages": [{"role": "user", "content": "hi"}]}
    refused = await http.post("/v1/chat/completions", json=body, headers=user)
    assert refused.json()["error"]["type"] == "exceeded_current_quota_error"

    topped = (
        await http.post(
            f"/admin/accounts/{account['id']}/topup",
            json={"amount": "120", "reason": "invoice 7"},
            headers=ADMIN,
        )
    ).json()
    assert topped["cash_balance"] == 120.0 and topped["tier"] == 2  # ¥100+ is tier 2
    vouchered = (
        await http.post("/admin/accounts/acme/vouchers", json={"amount": 5}, headers=ADMIN)
    ).json()
    assert vouchered["voucher_balance"] == 5.0
    bad = await http.post("/admin/accounts/acme/topup", json={"amount": -1}, headers=ADMIN)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "amount"

    limited = (
        await http.put("/admin/accounts/acme/limits", json={"tier": 3, "rpm": 7}, headers=ADMIN)
    ).json()
    assert limited["tier"] == 3 and limited["limits"]["rpm"] == 7
    assert limited["limits"]["concurrency"] == 200

    for _ in range(3):
        assert (await http.post("/v1/chat/completions", json=body, headers=user)).status_code == 200
    report = (
        await http.get(
            "/admin/usage", params={"group_by": "model", "account": "acme"}, headers=ADMIN
        )
    ).json()
    assert [row["group"] for row in report["rows"]] == ["kimi-k2.5"]
    assert report["total"]["requests"] == 3 and report["total"]["cost"] > 0
    by_day = (await http.get("/admin/usage", params={"group_by": "day"}, headers=ADMIN)).json()
    assert by_day["total"]["requests"] == 3
    exported = await http.get(
        "/admin/usage", params={"group_by": "key", "format": "csv"}, headers=ADMIN
    )
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0][0] == "key" and rows[-1][0] == "TOTAL" and rows[1][0] == key["id"]
    assert (
        await http.get("/admin/usage", params={"group_by": "planet"}, headers=ADMIN)
    ).status_code == 400

    assert (await http.delete(f"/admin/keys/{key['id']}", headers=ADMIN)).status_code == 200
    assert (await http.get("/v1/models", headers=user)).status_code == 401
    assert (await http.delete(f"/admin/keys/{key['id']}", headers=ADMIN)).status_code == 404
