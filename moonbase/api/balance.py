"""GET /v1/users/me/balance: the caller's account, in CNY."""

from __future__ import annotations

from fastapi import APIRouter

from moonbase.api.deps import BillingDep, CallerDep
from moonbase.billing.money import to_yuan
from moonbase.schemas.balance import BalanceData, BalanceResponse

router = APIRouter()


@router.get("/v1/users/me/balance", response_model=BalanceResponse)
async def balance(billing: BillingDep, caller: CallerDep) -> BalanceResponse:
    balances = await billing.balances(caller.account_id)
    return BalanceResponse(
        data=BalanceData(
            available_balance=to_yuan(balances.available_micro),
            voucher_balance=to_yuan(balances.voucher_micro),
            cash_balance=to_yuan(balances.cash_micro),
        )
    )
