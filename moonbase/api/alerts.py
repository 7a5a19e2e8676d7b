"""Spend alerts of a project over the admin API (its token, its audit actor)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from moonbase.alerts.manage import ProjectAlerts
from moonbase.api.admin import ActorDep, require_admin
from moonbase.api.bodies import json_body
from moonbase.api.deps import AlertsDep
from moonbase.schemas.alerts import (
    AlertCreate,
    AlertOut,
    DeliveryOut,
    ProjectAlertsOut,
    WebhookSecretOut,
    WebhookUpdate,
)

router = APIRouter(prefix="/admin/projects/{project_id}/alerts",
                   dependencies=[Depends(require_admin)])  # fmt: skip


def _listing(view: ProjectAlerts) -> ProjectAlertsOut:
    return ProjectAlertsOut.model_validate(asdict(view))


@router.get("", response_model=ProjectAlertsOut)
async def list_alerts(project_id: str, alerts: AlertsDep) -> ProjectAlertsOut:
    """The project's webhook (never its secret) and alerts."""
    return _listing(await alerts.listing(project_id))


@router.post("", response_model=AlertOut, status_code=201)
async def create_alert(
    project_id: str,
    body: Annotated[AlertCreate, Depends(json_body(AlertCreate))],
    alerts: AlertsDep,
    actor: ActorDep,
) -> AlertOut:
    view = await alerts.add(project_id, body.period, body.threshold, actor)
    return AlertOut(**asdict(view))


@router.put("/webhook", response_model=WebhookSecretOut)
async def set_webhook(
    project_id: str,
    body: Annotated[WebhookUpdate, Depends(json_body(WebhookUpdate))],
    alerts: AlertsDep,
    actor: ActorDep,
) -> WebhookSecretOut:
    """Set where alerts go; a new webhook's secret is in this answer only."""
    return WebhookSecretOut(**asdict(await alerts.set_webhook(project_id, body.url, actor)))


@router.post("/webhook/rotate", response_model=WebhookSecretOut)
async def rotate_secret(project_id: str, alerts: AlertsDep, actor: ActorDep) -> WebhookSecretOut:
    """A new signing secret, in this answer only; the old one stops at once."""
    return WebhookSecretOut(**asdict(await alerts.rotate_secret(project_id, actor)))


@router.delete("/webhook")
async def delete_webhook(project_id: str, alerts: AlertsDep, actor: ActorDep) -> dict[str, object]:
    await alerts.remove_webhook(project_id, actor)
    return {"project_id": project_id, "webhook": None}


@router.get("/deliveries", response_model=list[DeliveryOut])
async def deliveries(
    project_id: str,
    alerts: AlertsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[DeliveryOut]:
    """The project's webhook deliveries, newest first, with their last error."""
    return [DeliveryOut(**asdict(view)) for view in await alerts.deliveries(project_id, limit)]


# After the /webhook routes: a path parameter here would take "webhook" for an id.
@router.delete("/{alert_id}")
async def delete_alert(
    project_id: str, alert_id: str, alerts: AlertsDep, actor: ActorDep
) -> dict[str, object]:
    await alerts.remove(project_id, alert_id, actor)
    return {"id": alert_id, "deleted": True}
