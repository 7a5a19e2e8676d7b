"""Money as integer micro-yuan (1e-6 CNY), so every sum is exact."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

MICRO_PER_YUAN = 1_000_000


def to_micro(yuan: Decimal | float | str) -> int:
    return int((Decimal(str(yuan)) * MICRO_PER_YUAN).to_integral_value(ROUND_HALF_UP))


def to_yuan(micro: int) -> float:
    return float(Decimal(micro) / MICRO_PER_YUAN)
