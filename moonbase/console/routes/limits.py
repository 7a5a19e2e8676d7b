"""Rate limits: the organisation's tier and limits with what counts against
them now (the rate limiter's own counts: this gateway's, or every gateway's
with Redis), and each visible project's own limits and use. Everyone in the
organisation reads it; a member sees their projects only."""

from __future__ import annotations

from starlette.responses import Response

from moonbase.api.deps import OrganizationDep
from moonbase.billing.tiers import TIERS
from moonbase.console.pages import MemberPage, console_router, nav

router = console_router()
nav("/console/limits", "nav.limits", order=60)
NAMES = ("concurrency", "rpm", "tpm", "tpd")


@router.get("/limits")
async def limits(page: MemberPage, service: OrganizationDep) -> Response:
    found = await service.rate_limits(page.signed_in)
    used = found.in_use
    now = {"concurrency": used.in_flight, "rpm": used.requests_minute,
           "tpm": used.tokens_minute, "tpd": used.tokens_day}  # fmt: skip
    projects = [
        (row, {"concurrency": u.in_flight, "rpm": u.requests_minute, "tpm": u.tokens_minute,
               "tpd": u.tokens_day})
        for row, u in found.projects
    ]  # fmt: skip
    following = next((tier for tier in TIERS if tier.level == found.tier + 1), None)
    return page.render(
        "limits.html", tier=found.tier, limits=found.limits, now=now, names=NAMES,
        projects=projects, next_tier=following,
    )  # fmt: skip
