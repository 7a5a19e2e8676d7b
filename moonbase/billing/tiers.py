"""Moonshot's public rate-limit tiers, by cumulative cash top-up."""

from __future__ import annotations

from dataclasses import dataclass

from moonbase.billing.money import to_micro


@dataclass(frozen=True)
class Limits:
    concurrency: int
    rpm: int
    tpm: int
    tpd: int | None  # None: unlimited


@dataclass(frozen=True)
class Tier:
    level: int
    min_topup_micro: int
    limits: Limits


TIERS: tuple[Tier, ...] = (
    Tier(0, to_micro(0), Limits(1, 3, 500_000, 1_500_000)),
    Tier(1, to_micro(50), Limits(50, 200, 2_000_000, None)),
    Tier(2, to_micro(100), Limits(100, 500, 3_000_000, None)),
    Tier(3, to_micro(500), Limits(200, 5_000, 3_000_000, None)),
    Tier(4, to_micro(5_000), Limits(400, 5_000, 4_000_000, None)),
    Tier(5, to_micro(20_000), Limits(1_000, 10_000, 5_000_000, None)),
)


def tier_for(topped_up_micro: int, override: int | None = None) -> Tier:
    if override is not None:
        return TIERS[max(0, min(override, len(TIERS) - 1))]
    reached = [tier for tier in TIERS if topped_up_micro >= tier.min_topup_micro]
    return reached[-1]
