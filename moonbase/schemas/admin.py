"""Wire models of the admin API (/admin/...)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import Field, StrictInt

from moonbase import bounds
from moonbase.billing import money
from moonbase.schemas.base import StrictWireModel, WireModel


class AccountCreate(StrictWireModel):
    name: Annotated[str, bounds.ACCOUNT_NAME] = Field(min_length=1)


class KeyRestrict(StrictWireModel):
    """A key's limits; a field left out (or null) means no limit of that kind."""

    expires_at: datetime | None = None
    allowed_ips: list[Annotated[str, bounds.NETWORK]] | None = None
    allowed_models: list[Annotated[str, bounds.MODEL]] | None = None


class KeyCreate(KeyRestrict):
    name: Annotated[str, bounds.KEY_NAME] = ""
    project: Annotated[str, bounds.ID] | None = None  # an id or a name; None: default


class Budgets(StrictWireModel):
    """A project's budgets in yuan; left out (or null): no budget of that kind."""

    daily_budget: Decimal | None = Field(
        None, gt=0, le=money.MAX_AMOUNT, decimal_places=money.DECIMAL_PLACES
    )
    monthly_budget: Decimal | None = Field(
        None, gt=0, le=money.MAX_AMOUNT, decimal_places=money.DECIMAL_PLACES
    )


class ProjectCreate(Budgets):
    name: Annotated[str, bounds.PROJECT_NAME] = Field(min_length=1)


class ProjectOut(WireModel):
    id: str
    account_id: str
    name: str
    daily_budget: float | None
    monthly_budget: float | None
    allowed_models: list[str] | None = None  # None: any model
    # concurrency, rpm, tpm, tpd; None: only the organisation's
    limits: dict[str, int | None] = Field(default_factory=dict)


class ProjectModels(StrictWireModel):
    """The models a project's keys may use; null: any model."""

    allowed_models: list[Annotated[str, bounds.MODEL]] | None


class ProjectLimitsUpdate(StrictWireModel):
    """A project's own rate limits; left out (or null): only the organisation's.
    Each must be no higher than the organisation's current limit."""

    concurrency: StrictInt | None = Field(None, ge=1, le=bounds.MAX_REQUEST_LIMIT)
    rpm: StrictInt | None = Field(None, ge=1, le=bounds.MAX_REQUEST_LIMIT)
    tpm: StrictInt | None = Field(None, ge=1, le=bounds.MAX_TOKEN_LIMIT)
    tpd: StrictInt | None = Field(None, ge=1, le=bounds.MAX_TOKEN_LIMIT)


class KeyRotate(StrictWireModel):
    grace_s: float = Field(3600, ge=0, description="how long the old secret keeps working")


class KeyListingOut(WireModel):
    id: str
    account: str
    name: str
    display: str
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None
    disabled_at: datetime | None
    allowed_ips: list[str] | None
    allowed_models: list[str] | None
    last_used_at: datetime | None
    created_by: str | None = None


class Credit(StrictWireModel):
    # Whole micro-yuan, and within what a balance column holds (money.MAX_AMOUNT).
    amount: Decimal = Field(
        gt=0, le=money.MAX_AMOUNT, decimal_places=money.DECIMAL_PLACES, description="CNY"
    )
    reason: Annotated[str, bounds.LEDGER_REASON] = ""
    reference: Annotated[str, bounds.LEDGER_REFERENCE] | None = None


class LimitsUpdate(StrictWireModel):
    tier: StrictInt | None = Field(None, ge=0, le=5)
    concurrency: StrictInt | None = Field(None, ge=1, le=bounds.MAX_REQUEST_LIMIT)
    rpm: StrictInt | None = Field(None, ge=1, le=bounds.MAX_REQUEST_LIMIT)
    tpm: StrictInt | None = Field(None, ge=1, le=bounds.MAX_TOKEN_LIMIT)
    tpd: StrictInt | None = Field(None, ge=1, le=bounds.MAX_TOKEN_LIMIT)


class AccountOut(WireModel):
    id: str
    name: str
    cash_balance: float
    voucher_balance: float
    topped_up: float
    tier: int
    limits: dict[str, int | None]


class KeyOut(WireModel):
    id: str
    key: str


class UsageRowOut(WireModel):
    group: str
    requests: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    cost: float


class UsageReport(WireModel):
    group_by: str
    rows: list[UsageRowOut]
    total: UsageRowOut


class AuditEventOut(WireModel):
    id: int
    at: datetime
    actor: str
    address: str | None
    action: str
    target: str
    account_id: str | None
    changes: dict[str, Any]
