"""Money as integer micro-yuan (1e-6 CNY), so every sum is exact."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

MICRO_PER_YUAN = 1_000_000


def to_micro(yuan: Decimal | float | str) -> int:
    return int((Decimal(str(yuan)) * MICRO_PER_YUAN).to_integral_value(ROUND_HALF_UP))


def to_yuan(micro: int) -> float:
    return float(Decimal(micro) / MICRO_PER_YUAN)


# An amount an operator may move at once: whole micro-yuan, at most ¥1e9.
# Balances are 64-bit micro-yuan (up to ~¥9.2e12), so no credit can overflow
# one; credit() also refuses a balance that would leave that range.
DECIMAL_PLACES = 6
MAX_AMOUNT = Decimal(10**9)
MAX_BALANCE_MICRO = 2**63 - 1


def amount_problem(yuan: Decimal) -> str | None:
    """Why ``yuan`` is not an amount an operator may move, or None."""
    if not yuan.is_finite():
        return "amount must be a finite number of yuan"
    if abs(yuan) > MAX_AMOUNT:
        return f"amount must be at most {MAX_AMOUNT} yuan"
    if yuan != yuan.quantize(Decimal(1).scaleb(-DECIMAL_PLACES)):
        return f"amount has at most {DECIMAL_PLACES} decimal places (1 micro-yuan)"
    if yuan == 0:
        return "amount must not be zero"
    return None
