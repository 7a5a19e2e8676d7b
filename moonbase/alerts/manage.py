"""Operator actions on a project's spend alerts and webhook, for the CLI and
the admin API; each change is in the audit log (never the secret itself)."""

from __future__ import annotations

import secrets
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from moonbase import bounds
from moonbase.alerts import events, signing
from moonbase.auth.actor import Actor, cli_actor
from moonbase.billing.money import amount_problem, to_micro
from moonbase.errors import BadRequestError, NotFoundError
from moonbase.store.database import Database
from moonbase.store.repositories import audit, projects, spend_alerts
from moonbase.store.repositories import webhook_deliveries as outbox
from moonbase.store.tables import Project, ProjectWebhook, SpendAlert, WebhookDelivery, utcnow

# Each alert costs the detector a comparison (and, until it fires, a sum) every check.
MAX_ALERTS_PER_PROJECT = 20


@dataclass(frozen=True)
class AlertView:
    id: str
    project_id: str
    period: str  # "day" | "month"
    threshold: str  # yuan, six decimals
    created_at: datetime
    last_crossed: str | None  # the latest period it fired in ("2026-12-03", "2026-12")


@dataclass(frozen=True)
class WebhookView:
    url: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ProjectAlerts:
    project_id: str
    webhook: WebhookView | None  # never the secret
    alerts: list[AlertView]


@dataclass(frozen=True)
class WebhookSet:
    url: str
    secret: str | None  # shown once: when the webhook is made or its secret rotated


@dataclass(frozen=True)
class DeliveryView:
    id: str
    alert_id: str | None
    event_type: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime | None  # while pending
    delivered_at: datetime | None
    created_at: datetime
    payload: str


def check_url(url: str) -> str:
    """A webhook URL: http or https, a host, no credentials, within its bound."""
    problem = bounds.WEBHOOK_URL.check(url, "url")
    if problem is not None:
        raise BadRequestError(problem, param="url")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise BadRequestError("url must not contain spaces or control characters", param="url")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port  # raises on a port that is not a number in 0-65535
    except ValueError as exc:
        raise BadRequestError(f"url is not a valid URL ({exc})", param="url") from None
    if parts.scheme not in ("http", "https"):
        raise BadRequestError("url must be an http:// or https:// URL", param="url")
    if not parts.hostname:
        raise BadRequestError("url must name a host", param="url")
    if parts.username is not None or parts.password is not None:
        # Listings show the URL; receivers check the signature instead.
        raise BadRequestError("url must not carry credentials (user:password@)", param="url")
    if port == 0:
        raise BadRequestError("url's port must be 1-65535", param="url")
    if parts.fragment:
        raise BadRequestError("url must not have a #fragment", param="url")
    return url


def check_alert(period: str, threshold: Decimal) -> int:
    """The threshold in micro-yuan, once the period and amount are valid."""
    if period not in events.PERIODS:
        raise BadRequestError("period must be 'day' or 'month'", param="period")
    problem = amount_problem(threshold)
    if problem is not None or threshold <= 0:
        raise BadRequestError(
            (problem or "must be positive").replace("amount", "threshold"), param="threshold"
        )
    return to_micro(threshold)


def parse_alert(text: str) -> tuple[str, Decimal]:
    """``day:5.00`` or ``month:300`` (the CLI's form)."""
    period, _, amount = text.partition(":")
    try:
        threshold = Decimal(amount.strip())
    except InvalidOperation:
        raise BadRequestError(
            f"{text!r} is not PERIOD:YUAN (day:5.00, month:300)", param="threshold"
        ) from None
    check_alert(period.strip(), threshold)
    return period.strip(), threshold


async def _project(session: AsyncSession, project_id: str) -> Project:
    if bounds.ID.check(project_id, "project") is not None:
        raise NotFoundError(f"no project {project_id!r}", param="project")
    project = await projects.get(session, project_id)
    if project is None:
        raise NotFoundError(f"no project {project_id!r}", param="project")
    return project


def _alert_view(alert: SpendAlert, last_key: str | None) -> AlertView:
    return AlertView(
        alert.id,
        alert.project_id,
        alert.period,
        events.yuan_text(alert.threshold_micro),
        alert.created_at,
        last_key.partition(":")[2] if last_key else None,
    )


async def list_alerts(db: Database, project_id: str) -> ProjectAlerts:
    async with db.read() as session:
        project = await _project(session, project_id)
        hook = await spend_alerts.webhook(session, project.id)
        alerts = await spend_alerts.of_project(session, project.id)
        last = await outbox.last_keys(session, [alert.id for alert in alerts])
    view = None if hook is None else WebhookView(hook.url, hook.created_at, hook.updated_at)
    return ProjectAlerts(project.id, view, [_alert_view(a, last.get(a.id)) for a in alerts])


async def add_alert(
    db: Database, project_id: str, period: str, threshold: Decimal, actor: Actor | None = None
) -> AlertView:
    micro = check_alert(period, threshold)
    alert = SpendAlert(
        id="alert-" + secrets.token_hex(12),
        period=period,
        threshold_micro=micro,
        created_at=utcnow(),
    )
    try:
        async with db.transaction() as session:
            project = await _project(session, project_id)
            if await spend_alerts.count(session, project.id) >= MAX_ALERTS_PER_PROJECT:
                raise BadRequestError(
                    f"a project has at most {MAX_ALERTS_PER_PROJECT} alerts", param="threshold"
                )
            alert.project_id = project.id
            session.add(alert)
            await session.flush()
            details = {"project": project.id, "period": period, "threshold": str(threshold)}
            audit.record(session, actor or cli_actor(), "alert.create", alert.id,
                         project.account_id, details)  # fmt: skip
    except IntegrityError:
        raise BadRequestError(
            f"the project has a {period} alert at ¥{events.yuan_text(micro)}", param="threshold"
        ) from None
    return _alert_view(alert, None)


async def remove_alert(
    db: Database, project_id: str, alert_id: str, actor: Actor | None = None
) -> None:
    async with db.transaction() as session:
        project = await _project(session, project_id)
        alert = None
        if bounds.ID.check(alert_id, "alert") is None:
            alert = await spend_alerts.get(session, project.id, alert_id)
        if alert is None:
            raise NotFoundError(f"no alert {alert_id!r} in project {project.id}", param="alert")
        details = {"project": project.id, "period": alert.period,
                   "threshold": events.yuan_text(alert.threshold_micro)}  # fmt: skip
        await spend_alerts.remove(session, alert.id)
        audit.record(session, actor or cli_actor(), "alert.delete", alert.id,
                     project.account_id, details)  # fmt: skip


async def set_webhook(
    db: Database, project_id: str, url: str, actor: Actor | None = None
) -> WebhookSet:
    """Point the project's alerts at ``url``. A new webhook gets a secret
    (returned this once); changing the URL keeps the secret receivers know."""
    check_url(url)
    async with db.transaction() as session:
        project = await _project(session, project_id)
        hook = await spend_alerts.webhook(session, project.id)
        now = utcnow()
        secret: str | None = None
        if hook is None:
            secret = signing.new_secret()
            session.add(
                ProjectWebhook(
                    project_id=project.id, url=url, secret=secret, created_at=now, updated_at=now
                )
            )
            changes: dict[str, object] = {"url": [None, url], "secret": "created"}
        else:
            changes = {"url": [hook.url, url]}
            hook.url = url
            hook.updated_at = now
        audit.record(session, actor or cli_actor(), "webhook.set", project.id,
                     project.account_id, changes)  # fmt: skip
    return WebhookSet(url, secret)


async def rotate_secret(db: Database, project_id: str, actor: Actor | None = None) -> WebhookSet:
    """A new signing secret (returned this once); the old one stops at once."""
    async with db.transaction() as session:
        project = await _project(session, project_id)
        hook = await spend_alerts.webhook(session, project.id)
        if hook is None:
            raise NotFoundError(f"project {project.id} has no webhook", param="webhook")
        hook.secret = signing.new_secret()
        hook.updated_at = utcnow()
        audit.record(session, actor or cli_actor(), "webhook.rotate", project.id,
                     project.account_id, {"secret": "rotated"})  # fmt: skip
        return WebhookSet(hook.url, hook.secret)


async def remove_webhook(db: Database, project_id: str, actor: Actor | None = None) -> None:
    """No more alerts are sent (pending deliveries fail: no webhook)."""
    async with db.transaction() as session:
        project = await _project(session, project_id)
        hook = await spend_alerts.webhook(session, project.id)
        if hook is None:
            raise NotFoundError(f"project {project.id} has no webhook", param="webhook")
        changes = {"url": [hook.url, None]}
        await spend_alerts.remove_webhook(session, project.id)
        audit.record(session, actor or cli_actor(), "webhook.delete", project.id,
                     project.account_id, changes)  # fmt: skip


def _delivery_view(row: WebhookDelivery) -> DeliveryView:
    pending = row.status == "pending"
    return DeliveryView(
        row.id,
        row.alert_id,
        row.event_type,
        row.status,
        row.attempts,
        row.last_status,
        row.last_error,
        datetime.fromtimestamp(row.next_attempt_at, UTC) if pending else None,
        row.delivered_at,
        row.created_at,
        row.payload,
    )


async def list_deliveries(db: Database, project_id: str, limit: int = 50) -> list[DeliveryView]:
    async with db.read() as session:
        project = await _project(session, project_id)
        return [_delivery_view(row) for row in await outbox.of_project(session, project.id, limit)]


class AlertsService:
    """The admin API's door to the functions above, on this process's store."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def listing(self, project_id: str) -> ProjectAlerts:
        return await list_alerts(self._db, project_id)

    async def add(
        self, project_id: str, period: str, threshold: Decimal, actor: Actor
    ) -> AlertView:
        return await add_alert(self._db, project_id, period, threshold, actor)

    async def remove(self, project_id: str, alert_id: str, actor: Actor) -> None:
        await remove_alert(self._db, project_id, alert_id, actor)

    async def set_webhook(self, project_id: str, url: str, actor: Actor) -> WebhookSet:
        return await set_webhook(self._db, project_id, url, actor)

    async def rotate_secret(self, project_id: str, actor: Actor) -> WebhookSet:
        return await rotate_secret(self._db, project_id, actor)

    async def remove_webhook(self, project_id: str, actor: Actor) -> None:
        await remove_webhook(self._db, project_id, actor)

    async def deliveries(self, project_id: str, limit: int) -> list[DeliveryView]:
        return await list_deliveries(self._db, project_id, limit)
