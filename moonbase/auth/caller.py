"""The caller of a request, as its API key names it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeyOwner:
    """The key a request came with and the account it spends from."""

    key_id: str
    account_id: str
