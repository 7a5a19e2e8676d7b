"""Wire models of a project's spend alerts and webhook (/admin/projects/{id}/alerts)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field

from moonbase import bounds
from moonbase.billing import money
from moonbase.schemas.base import StrictWireModel, WireModel


class AlertCreate(StrictWireModel):
    period: Literal["day", "month"]
    threshold: Decimal = Field(
        gt=0, le=money.MAX_AMOUNT, decimal_places=money.DECIMAL_PLACES, description="CNY"
    )


class WebhookUpdate(StrictWireModel):
    url: Annotated[str, bounds.WEBHOOK_URL] = Field(min_length=1)


class AlertOut(WireModel):
    id: str
    project_id: str
    period: str
    threshold: str  # yuan, six decimals
    created_at: datetime
    last_crossed: str | None


class WebhookOut(WireModel):
    url: str
    created_at: datetime
    updated_at: datetime


class ProjectAlertsOut(WireModel):
    project_id: str
    webhook: WebhookOut | None
    alerts: list[AlertOut]


class WebhookSecretOut(WireModel):
    url: str
    # The signing secret (whsec_...), only when the webhook is made or rotated.
    secret: str | None


class DeliveryOut(WireModel):
    id: str
    alert_id: str | None
    event_type: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    payload: str
