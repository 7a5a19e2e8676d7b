"""Spend alerts: which thresholds a project's spend has crossed this UTC day or month.

A periodic task, never the request path: every ``check_interval_s`` it reads
the alerts of projects that have a webhook, leaves out those already sent for
the current period, reads the rest's projects' spend this month (and this
day, only where the month has reached a day threshold) with
``projects.spent_since`` (committed charges) and inserts one delivery per
alert crossed. So an alert goes out seconds after the charge that crossed it
commits (the group commit, then at most ``check_interval_s``), and a project
whose alerts have all fired this period costs no sums until the period turns.
Each other armed project costs one or two indexed sums per check
(bench/spend_alerts_bench.py); an operator who would rather keep that off
the gateways sets ``alerts.run = false`` there and leaves it to workers.

Every gateway and worker may run one. The outbox's unique idempotency key
(``<alert id>:<period>``) decides which insert of a crossing wins, and an
``ON CONFLICT DO NOTHING`` insert lets the others pass without an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from moonbase.alerts import events
from moonbase.settings import AlertSettings
from moonbase.store.database import Database
from moonbase.store.repositories import projects, spend_alerts
from moonbase.store.repositories import webhook_deliveries as outbox
from moonbase.store.tables import SpendAlert

log = logging.getLogger(__name__)

INSERT_CHUNK = 100  # crossings recorded per transaction (one statement)


def _now() -> datetime:
    return datetime.now(UTC)


class SpendAlertDetector:
    def __init__(
        self, db: Database, settings: AlertSettings, clock: Callable[[], datetime] = _now
    ) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock

    async def run(self) -> None:
        """Check until cancelled."""
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed check (the database away) is tried again
                log.exception("spend alert check failed")
            await asyncio.sleep(self._settings.check_interval_s)

    async def check(self) -> int:
        """Record every crossing not yet recorded this period; how many this call recorded."""
        now = self._clock()
        async with self._db.read() as session:
            armed = await spend_alerts.armed(session)
            keys = {alert.id: events.idempotency_key(alert.id, alert.period, now)
                    for alert, _ in armed}  # fmt: skip
            sent = await outbox.existing_keys(session, keys.values())
            waiting = [(alert, org) for alert, org in armed if keys[alert.id] not in sent]
            spend = await self._spend(session, [alert for alert, _ in waiting], now)
        crossed = [
            (alert, org, spend[alert.project_id, alert.period])
            for alert, org in waiting
            if spend.get((alert.project_id, alert.period), -1) >= alert.threshold_micro
        ]
        recorded = 0
        # Short transactions of one statement each: on SQLite the write lock
        # is the charges' too, and a new period can cross many alerts at once.
        for start in range(0, len(crossed), INSERT_CHUNK):
            chunk = crossed[start : start + INSERT_CHUNK]
            rows = [
                self._row(alert, org, spent, keys[alert.id], now) for alert, org, spent in chunk
            ]
            async with self._db.transaction() as session:
                inserted = await outbox.insert_new(session, rows)
            for alert, _, spent in chunk:
                if keys[alert.id] in inserted:
                    log.info(
                        "spend alert %s of project %s crossed: %s spend %s >= %s yuan",
                        alert.id, alert.project_id, alert.period,
                        events.yuan_text(spent), events.yuan_text(alert.threshold_micro),
                    )  # fmt: skip
            recorded += len(inserted)
        return recorded

    @staticmethod
    async def _spend(
        session: AsyncSession, alerts: list[SpendAlert], now: datetime
    ) -> dict[tuple[str, str], int]:
        """(project, period) -> micro-yuan spent, for the periods that could
        have crossed. A day's spend is part of its month's, so the day is read
        only when the month reaches one of the project's day thresholds."""
        lowest_day: dict[str, int] = {}
        for alert in alerts:
            if alert.period == "day":
                lowest = lowest_day.get(alert.project_id, alert.threshold_micro)
                lowest_day[alert.project_id] = min(lowest, alert.threshold_micro)
        spend: dict[tuple[str, str], int] = {}
        for project_id in sorted({alert.project_id for alert in alerts}):
            since = events.period_start("month", now)
            month = await projects.spent_since(session, project_id, since)
            spend[project_id, "month"] = month
            if project_id in lowest_day and month >= lowest_day[project_id]:
                since = events.period_start("day", now)
                spend[project_id, "day"] = await projects.spent_since(session, project_id, since)
        return spend

    @staticmethod
    def _row(alert: SpendAlert, org: str, spent: int, key: str, now: datetime) -> dict[str, Any]:
        payload = events.crossed_payload(
            alert_id=alert.id,
            project_id=alert.project_id,
            organization_id=org,
            period=alert.period,
            threshold_micro=alert.threshold_micro,
            spend_micro=spent,
            now=now,
        )
        return {
            "id": events.new_delivery_id(),
            "project_id": alert.project_id,
            "alert_id": alert.id,
            "event_type": events.CROSSED,
            "payload": payload,
            "idempotency_key": key,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": time.time(),  # the sender's clock, not the check's
            "created_at": now,
        }
