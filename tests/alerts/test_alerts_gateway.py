"""End to end on a real gateway (SQLite and PostgreSQL): chat requests are
charged, the charge commits, the gateway's own detector sees the crossing and
its sender POSTs one signed alert to a local receiver; more spend in the same
day sends nothing more. Nothing of this runs on the request path."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

from moonbase import admin
from moonbase.alerts import manage
from moonbase.settings import Settings
from moonbase.store.database import Database
from tests.alerts.projects import FAST
from tests.alerts.receiver import receiver, verify
from tests.billing.accounts import funded_account
from tests.billing.gateway import live_gateway
from tests.billing.test_quota_and_limits import BODY, client_for
from tests.fakes import ScriptedEngine


async def test_a_charge_that_crosses_a_threshold_sends_one_alert(
    database: Database, tmp_path: Path
):
    await funded_account(database, "acme", cash="100")
    project = await admin.create_project(database, "acme", "nightly")
    key = (await admin.create_key(database, "acme", project="nightly")).secret
    settings = Settings(data_dir=tmp_path, alerts=FAST)
    async with receiver() as hook:
        made = await manage.set_webhook(database, project.id, hook.url)
        assert made.secret is not None
        await manage.add_alert(database, project.id, "day", Decimal("0.000001"))
        async with live_gateway(database, settings, ScriptedEngine()) as url:
            async with await client_for(url, key) as client:
                response = await client.post("/v1/chat/completions", json=BODY)
                assert response.status_code == 200
                await hook.wait_for(1)
                for _ in range(3):
                    assert (await client.post("/v1/chat/completions", json=BODY)).status_code == 200
            # Many check intervals later, still the one POST: once per alert per day.
            await asyncio.sleep(20 * FAST.check_interval_s)
    assert len(hook.received) == 1
    post = hook.received[0]
    assert verify(made.secret, post.headers, post.body)
    data = json.loads(post.body)["data"]
    assert (data["project_id"], data["period"], data["threshold"]) == (
        project.id,
        "day",
        "0.000001",
    )
    assert Decimal(data["spend"]) >= Decimal("0.000001")
    [delivery] = await manage.list_deliveries(database, project.id)
    assert (delivery.status, delivery.attempts) == ("delivered", 1)
