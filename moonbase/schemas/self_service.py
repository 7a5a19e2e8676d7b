"""Wire models of what a key holder reads about their own project (/v1/me/...)."""

from __future__ import annotations

from pydantic import Field

from moonbase.schemas.base import WireModel


class ProjectBudgetsOut(WireModel):
    daily: float | None  # yuan; None: no budget of that kind
    monthly: float | None
    spent_today: float  # committed charges, as admission last read them
    spent_this_month: float


class ProjectLimits(WireModel):
    organization_id: str
    project_id: str | None
    tier: int
    limits: dict[str, int | None]  # concurrency, rpm, tpm, tpd (None: no limit)
    budgets: ProjectBudgetsOut | None
    # The project's own: the models its keys may use (None: any) and its rate
    # limits on top of the organisation's (None: only the organisation's).
    allowed_models: list[str] | None = None
    project_limits: dict[str, int | None] = Field(default_factory=dict)


class ProjectUsageRow(WireModel):
    group: str
    requests: int
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    cost: float  # yuan


class ProjectUsage(WireModel):
    object: str = "list"
    project_id: str | None
    group_by: str
    since: str  # the first UTC day counted
    data: list[ProjectUsageRow]
