"""Spend alerts: which thresholds a project's spend has crossed this UTC day or month.

A periodic task, never the request path: every ``check_interval_s`` it reads
the alerts of projects that have a webhook, leaves out those already sent for
the current period, sums the spend of the rest's projects
(``projects.spent_since``, committed charges) and inserts one delivery per
alert crossed. So an alert goes out seconds after the charge that crossed it
commits (the group commit, then at most ``check_interval_s``), and a project
whose alerts have all fired this period costs no sums until the period turns.

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

from moonbase.alerts import events
from moonbase.settings import AlertSettings
from moonbase.store.database import Database
from moonbase.store.repositories import projects, spend_alerts
from moonbase.store.repositories import webhook_deliveries as outbox

log = logging.getLogger(__name__)


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
            spend: dict[tuple[str, str], int] = {}
            for project_id, period in sorted({(a.project_id, a.period) for a, _ in waiting}):
                since = events.period_start(period, now)
                spend[project_id, period] = await projects.spent_since(session, project_id, since)
        crossed = [
            (alert, org, spend[alert.project_id, alert.period])
            for alert, org in waiting
            if spend[alert.project_id, alert.period] >= alert.threshold_micro
        ]
        if not crossed:
            return 0
        recorded = 0
        async with self._db.transaction() as session:
            for alert, org, spent in crossed:
                payload = events.crossed_payload(
                    alert_id=alert.id,
                    project_id=alert.project_id,
                    organization_id=org,
                    period=alert.period,
                    threshold_micro=alert.threshold_micro,
                    spend_micro=spent,
                    now=now,
                )
                inserted = await outbox.insert_once(
                    session,
                    id=events.new_delivery_id(),
                    project_id=alert.project_id,
                    alert_id=alert.id,
                    event_type=events.CROSSED,
                    payload=payload,
                    idempotency_key=keys[alert.id],
                    status="pending",
                    attempts=0,
                    next_attempt_at=time.time(),  # the sender's clock, not the check's
                    created_at=now,
                )
                if inserted:
                    recorded += 1
                    log.info(
                        "spend alert %s of project %s crossed: %s spend %s >= %s yuan",
                        alert.id, alert.project_id, alert.period,
                        events.yuan_text(spent), events.yuan_text(alert.threshold_micro),
                    )  # fmt: skip
        return recorded
