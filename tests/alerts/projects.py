"""Projects with spend alerts and a webhook, and spend written as committed charges."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from moonbase import admin
from moonbase.alerts import manage
from moonbase.settings import AlertSettings
from moonbase.store.database import Database
from moonbase.store.repositories import usage_rollups
from moonbase.store.repositories.usage import GenerationUsage
from moonbase.store.tables import UsageRecord, utcnow
from tests.billing.accounts import funded_account

# Quick enough for tests; the backoff's shape is checked, not its minutes.
FAST = AlertSettings(
    check_interval_s=0.05,
    poll_interval_s=0.02,
    timeout_s=5,
    max_attempts=3,
    retry_base_s=0.05,
    retry_max_s=0.2,
)


@dataclass(frozen=True)
class Alerting:
    account_id: str
    project_id: str
    secret: str


async def alerting_project(
    db: Database, account: str, url: str, *alerts: tuple[str, str], project: str = "ops"
) -> Alerting:
    """A project of a new account whose webhook is ``url``, with ``alerts``
    ((period, yuan), ...)."""
    account_id, _ = await funded_account(db, account, cash="10")
    view = await admin.create_project(db, account, project)
    made = await manage.set_webhook(db, view.id, url)
    assert made.secret is not None
    for period, yuan in alerts:
        await manage.add_alert(db, view.id, period, Decimal(yuan))
    return Alerting(account_id, view.id, made.secret)


async def spend(db: Database, target: Alerting, micro: int, at: datetime | None = None) -> None:
    """A committed charge of ``micro`` to the project, with its daily rollup, as
    billing's group commit writes them (spend is read from the rollups)."""
    record = GenerationUsage(
        request_id="req-" + secrets.token_hex(8),
        account_id=target.account_id,
        api_key_id=None,
        model="moonshot-v1-8k",
        prompt_tokens=10,
        completion_tokens=10,
        cached_tokens=0,
        status="completed",
        cost_micro=micro,
        project_id=target.project_id,
    )
    when = at or utcnow()
    async with db.transaction() as session:
        session.add(
            UsageRecord(
                request_id=record.request_id,
                account_id=record.account_id,
                project_id=record.project_id,
                model=record.model,
                prompt_tokens=10,
                completion_tokens=10,
                status="completed",
                created_at=when,
                cost_micro=micro,
            )
        )
        await session.run_sync(lambda s: usage_rollups.add(s.connection(), [record], when))
