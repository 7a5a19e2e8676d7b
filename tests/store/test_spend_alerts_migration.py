"""Migration 0011 adds the spend-alert tables beside a database with data
(accounts, projects, keys, usage at revision 0010) and keeps every row; the new
tables take alerts, webhooks and deliveries that name those projects. On
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from moonbase.alerts.detector import SpendAlertDetector
from moonbase.alerts.manage import add_alert, set_webhook
from moonbase.settings import AlertSettings
from moonbase.store.database import Database
from moonbase.store.tables import Account, ApiKey, Project, UsageRecord, WebhookDelivery
from tests.conftest import BOTH_DATABASES, empty_database
from tests.store.test_upgrade_from_previous_release import upgrade_to

NOW = datetime.now(UTC)


@pytest.fixture(params=BOTH_DATABASES)
async def at_0010(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with empty_database(request.param, tmp_path) as db:
        async with db.engine.begin() as connection:
            # Data written before the daily rollups (0009), which backfill it:
            # the detector reads spend from the rollups.
            await connection.run_sync(upgrade_to, "0008")
            for statement in (
                "INSERT INTO accounts (id, name, created_at, cash_micro, voucher_micro, "
                "topped_up_micro) VALUES ('acct-a', 'acme', :now, 5000000, 7, 0)",
                "INSERT INTO projects (id, account_id, name, created_at, daily_budget_micro) "
                "VALUES ('proj-a', 'acct-a', 'default', :now, 9000000)",
                "INSERT INTO api_keys (id, account_id, project_id, name, key_hash, display, "
                "created_at) VALUES ('key-a', 'acct-a', 'proj-a', 'ci', :hash, 'sk-A...A', :now)",
                "INSERT INTO usage_records (request_id, account_id, api_key_id, project_id, "
                "model, prompt_tokens, completion_tokens, cached_tokens, status, created_at, "
                "cost_micro, latency_ms) VALUES ('req-a', 'acct-a', 'key-a', 'proj-a', "
                "'moonshot-v1-8k', 10, 5, 0, 'completed', :now, 2500000, 3)",
            ):
                await connection.execute(text(statement), {"now": NOW, "hash": "h" * 64})
        yield db


async def test_0011_keeps_every_row_and_alerts_work_on_the_old_data(at_0010: Database):
    db = at_0010
    await db.migrate()
    async with db.read() as session:
        account = await session.get(Account, "acct-a")
        assert account is not None and (account.cash_micro, account.voucher_micro) == (5000000, 7)
        project = await session.get(Project, "proj-a")
        assert project is not None and project.daily_budget_micro == 9000000
        key = await session.get(ApiKey, "key-a")
        assert key is not None and key.project_id == "proj-a"
        usage = await session.scalar(select(func.sum(UsageRecord.cost_micro)))
        assert usage == 2500000
    await set_webhook(db, "proj-a", "http://127.0.0.1:9/hook")
    await add_alert(db, "proj-a", "day", Decimal("2"))
    assert await SpendAlertDetector(db, AlertSettings()).check() == 1  # the old usage counts
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookDelivery)) == 1
