"""The caller of a request, as its API key names it."""

from __future__ import annotations

from dataclasses import dataclass

from moonbase.auth.key_policy import OPEN, KeyPolicy


@dataclass(frozen=True)
class KeyOwner:
    """The key a request came with, the account it spends from, and what the
    key may do (auth/key_policy.py)."""

    key_id: str
    account_id: str
    policy: KeyPolicy = OPEN
    project_id: str | None = None  # the key's project (its budgets)
