"""Crossings are found after charges commit, once per alert per period, even
with several detectors (gateways) checking at the same moment; on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from sqlalchemy import select

from moonbase.alerts import manage
from moonbase.alerts.detector import SpendAlertDetector
from moonbase.store.database import Database
from moonbase.store.tables import WebhookDelivery
from tests.alerts.projects import FAST, alerting_project, spend

URL = "http://127.0.0.1:9/hook"  # never called here


async def deliveries(db: Database) -> list[WebhookDelivery]:
    async with db.read() as session:
        return list(await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


async def test_one_delivery_per_alert_per_period(database: Database):
    target = await alerting_project(database, "acme", URL, ("day", "1.00"), ("month", "3"))
    day1 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    clock = [day1]
    detector = SpendAlertDetector(database, FAST, clock=lambda: clock[0])

    await spend(database, target, 999_999, at=day1)
    assert await detector.check() == 0  # below both thresholds
    await spend(database, target, 1, at=day1)
    assert await detector.check() == 1  # the day's ¥1.00 reached exactly
    await spend(database, target, 500_000, at=day1)
    assert await detector.check() == 0  # crossed already today

    clock[0] = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    assert await detector.check() == 0  # a new day, nothing spent in it yet
    await spend(database, target, 1_600_000, at=clock[0])
    assert await detector.check() == 2  # today's ¥1.60 >= ¥1; the month's ¥3.10 >= ¥3
    assert await detector.check() == 0

    rows = await deliveries(database)
    assert sorted(row.idempotency_key.partition(":")[2] for row in rows) == [
        "2026-12", "2026-12-03", "2026-12-04",
    ]  # fmt: skip
    assert {row.status for row in rows} == {"pending"}
    by_period = {json.loads(r.payload)["data"]["period_start"]: r for r in rows}
    first = json.loads(by_period["2026-12-03"].payload)
    assert first["type"] == "spend_alert.crossed"
    assert first["timestamp"] == "2026-12-03T10:00:00Z"
    assert first["data"] == {
        "alert_id": by_period["2026-12-03"].alert_id,
        "project_id": target.project_id,
        "organization_id": target.account_id,
        "period": "day",
        "period_start": "2026-12-03",
        "threshold": "1.000000",
        "spend": "1.000000",
        "currency": "CNY",
    }
    month = json.loads(by_period["2026-12"].payload)["data"]
    assert (month["threshold"], month["spend"]) == ("3.000000", "3.100000")
    listing = await manage.list_alerts(database, target.project_id)
    assert {a.period: a.last_crossed for a in listing.alerts} == {
        "day": "2026-12-04",
        "month": "2026-12",
    }


async def test_alerts_without_a_webhook_are_not_armed(database: Database):
    target = await alerting_project(database, "beta", URL, ("day", "0.5"))
    await manage.remove_webhook(database, target.project_id)
    await spend(database, target, 2_000_000)
    assert await SpendAlertDetector(database, FAST).check() == 0
    await manage.set_webhook(database, target.project_id, URL)
    assert await SpendAlertDetector(database, FAST).check() == 1  # already over: it fires


async def test_two_gateways_checking_together_record_one_delivery(database: Database):
    """Two detectors on two connection pools (two gateways on one database)
    race on every crossing; the unique key lets exactly one insert win."""
    other = Database(database.url)
    try:
        first = SpendAlertDetector(database, FAST)
        second = SpendAlertDetector(other, FAST)
        targets = [
            await alerting_project(database, f"org{i}", URL, ("day", "1"), ("month", "1"))
            for i in range(5)
        ]
        for target in targets:
            await spend(database, target, 1_000_000)
        recorded = 0
        for _ in range(5):
            counts = await asyncio.gather(*(d.check() for d in (first, second, first, second)))
            recorded += sum(counts)
        rows = await deliveries(database)
        assert recorded == len(rows) == 2 * len(targets)
        assert len({row.idempotency_key for row in rows}) == len(rows)
    finally:
        await other.dispose()
