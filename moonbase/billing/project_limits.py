"""A project's own rate limits, counted beside its organisation's.

A project may set any of concurrency, RPM, TPM and TPD, each no higher than
its organisation's current limit; a request must pass both the project's and
the organisation's. The project's counts are kept by the same rate limiter
as the organisation's (memory or Redis) under the project's own key, so they
hold across gateways the same way. The limits themselves come with the
caller (``KeyOwner.project``, cached with its key): admission reads nothing
from the database for them, and a project without limits costs nothing.
"""

from __future__ import annotations

from moonbase.auth.project_policy import ProjectLimits
from moonbase.billing.tiers import Limits
from moonbase.errors import BadRequestError

# A limit the project leaves to its organisation: never reached (and exact in
# Redis's Lua numbers, which are doubles).
UNLIMITED = 2**53


def counting_key(project_id: str) -> str:
    """The limiter's key for a project's counts (account ids start with acct-)."""
    return f"project:{project_id}"


def as_limiter_limits(limits: ProjectLimits) -> Limits:
    return Limits(
        concurrency=limits.concurrency or UNLIMITED,
        rpm=limits.rpm or UNLIMITED,
        tpm=limits.tpm or UNLIMITED,
        tpd=limits.tpd,
    )


def check_within(limits: ProjectLimits, organisation: Limits, tier: int) -> None:
    """A 400 naming the first limit above the organisation's (and its value)."""
    for name, value in limits.as_dict().items():
        ceiling = getattr(organisation, name)
        if value is not None and ceiling is not None and value > ceiling:
            raise BadRequestError(
                f"a project's {name} may not exceed its organisation's: {name} {value} is "
                f"above {ceiling}, the organisation's {name} (tier {tier})",
                param=name,
                code="project_limit_above_organization",
            )
