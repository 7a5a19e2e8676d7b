"""Wire models of the admin API (/admin/...)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, StrictInt, StrictStr

from moonbase.schemas.base import StrictWireModel, WireModel


class AccountCreate(StrictWireModel):
    name: StrictStr = Field(min_length=1, max_length=200)


class KeyCreate(StrictWireModel):
    name: StrictStr = ""


class Credit(StrictWireModel):
    amount: Decimal = Field(gt=0, description="CNY")
    reason: StrictStr = ""
    reference: StrictStr | None = None


class LimitsUpdate(StrictWireModel):
    tier: StrictInt | None = Field(None, ge=0, le=5)
    concurrency: StrictInt | None = Field(None, ge=1)
    rpm: StrictInt | None = Field(None, ge=1)
    tpm: StrictInt | None = Field(None, ge=1)
    tpd: StrictInt | None = Field(None, ge=1)


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
