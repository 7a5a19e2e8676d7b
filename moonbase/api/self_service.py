"""What a key holder may read about their own project, with their own key.

``GET /v1/me/limits``: the organisation's tier and rate limits, and the
project's budgets with what it has spent this UTC day and month, its model
allowlist and its own rate limits.
``GET /v1/me/usage``: the project's requests, tokens and cost, by day, model
or key, over the last ``days`` days. Only the caller's own project is shown:
other projects of the organisation stay private to their keys.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from moonbase.api.deps import BillingDep, CallerDep
from moonbase.billing.money import to_yuan
from moonbase.schemas.self_service import (
    ProjectBudgetsOut,
    ProjectLimits,
    ProjectUsage,
    ProjectUsageRow,
)

router = APIRouter(prefix="/v1/me", tags=["self-service"])


def _yuan(micro: int | None) -> float | None:
    return to_yuan(micro) if micro is not None else None


@router.get("/limits", response_model=ProjectLimits)
async def my_limits(caller: CallerDep, billing: BillingDep) -> ProjectLimits:
    tier, limits = await billing.tier_and_limits(caller.account_id)
    budgets = None
    if caller.project_id is not None:
        status = await billing.budgets.status(caller.project_id)
        budgets = ProjectBudgetsOut(
            daily=_yuan(status.daily_micro),
            monthly=_yuan(status.monthly_micro),
            spent_today=to_yuan(status.spent_day),
            spent_this_month=to_yuan(status.spent_month),
        )
    return ProjectLimits(
        organization_id=caller.account_id,
        project_id=caller.project_id,
        tier=tier,
        limits=asdict(limits),
        budgets=budgets,
        allowed_models=sorted(caller.project.models) if caller.project.models is not None else None,
        project_limits=caller.project.limits.as_dict(),
    )


@router.get("/usage", response_model=ProjectUsage)
async def my_usage(
    caller: CallerDep,
    billing: BillingDep,
    group_by: Annotated[Literal["day", "model", "key"], Query()] = "day",
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> ProjectUsage:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since = today - timedelta(days=days - 1)
    rows = []
    if caller.project_id is not None:
        rows = await billing.project_usage(caller.project_id, group_by, since)
    return ProjectUsage(
        project_id=caller.project_id,
        group_by=group_by,
        since=since.date().isoformat(),
        data=[
            ProjectUsageRow(
                group=row.group,
                requests=row.requests,
                input_tokens=row.prompt_tokens,
                cached_tokens=row.cached_tokens,
                output_tokens=row.completion_tokens,
                cost=to_yuan(row.cost_micro),
            )
            for row in rows
        ],
    )
