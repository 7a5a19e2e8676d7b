"""The caller of a request, as its API key names it."""

from __future__ import annotations

from dataclasses import dataclass

from moonbase.auth.key_policy import OPEN, KeyPolicy
from moonbase.auth.project_policy import ANY_PROJECT, ProjectPolicy


@dataclass(frozen=True)
class KeyOwner:
    """The key a request came with, the account it spends from, and what the
    key may do (auth/key_policy.py) within its project (auth/project_policy.py)."""

    key_id: str
    account_id: str
    policy: KeyPolicy = OPEN
    project_id: str | None = None  # the key's project (its budgets, files, batches)
    project: ProjectPolicy = ANY_PROJECT  # the project's allowlist and rate limits

    def check_model(self, model_id: str) -> None:
        """Refuse a model the key or its project does not allow (403)."""
        self.policy.check_model(model_id)
        self.project.check_model(model_id)
