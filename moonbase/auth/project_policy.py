"""What the keys of one project may do: which models, and how fast.

A project's policy travels with each of its keys' owners (``KeyOwner.project``,
read in the same query as the key when the key cache loads it), so the hot
path checks it from memory: a change reaches every gateway within the key
cache's TTL (``billing.state_refresh_s``), this gateway at once.

A key may use a model only if its own allowlist and its project's both allow
it (the intersection); a refusal is the same 403 ``model_not_allowed`` as a
key's, naming the project. The project's rate limits count on top of the
organisation's (billing/project_limits.py): a request must pass both.
"""

from __future__ import annotations

from dataclasses import dataclass

from moonbase.errors import PermissionDeniedError


@dataclass(frozen=True)
class ProjectLimits:
    """A project's own rate limits; None: only the organisation's of that kind."""

    concurrency: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    tpd: int | None = None

    @property
    def any(self) -> bool:  # on every request: spelled out, no dict built
        return (
            self.concurrency is not None
            or self.rpm is not None
            or self.tpm is not None
            or self.tpd is not None
        )

    def as_dict(self) -> dict[str, int | None]:
        return {"concurrency": self.concurrency, "rpm": self.rpm, "tpm": self.tpm, "tpd": self.tpd}


NO_LIMITS = ProjectLimits()


@dataclass(frozen=True)
class ProjectPolicy:
    name: str = ""  # for refusals; "" for a caller that names no project
    models: frozenset[str] | None = None  # None: any model
    limits: ProjectLimits = NO_LIMITS

    def check_model(self, model_id: str) -> None:
        if self.models is not None and model_id not in self.models:
            allowed = ", ".join(sorted(self.models)) or "none"
            raise PermissionDeniedError(
                f"project {self.name} may not use model {model_id}; it may use: {allowed}",
                param="model",
                code="model_not_allowed",
            )


ANY_PROJECT = ProjectPolicy()
