"""Wire model of GET /v1/users/me/balance (the spec's BalanceResponse)."""

from __future__ import annotations

from typing import Literal

from moonbase.schemas.base import WireModel


class BalanceData(WireModel):
    available_balance: float
    voucher_balance: float
    cash_balance: float


class BalanceResponse(WireModel):
    code: Literal[0] = 0
    data: BalanceData
    scode: Literal["0x0"] = "0x0"
    status: Literal[True] = True
