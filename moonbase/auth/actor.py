"""Who makes an operator's change: the audit log's subject."""

from __future__ import annotations

import getpass
from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    who: str  # "cli:alice", "admin-api"
    address: str | None = None  # the client's address, for changes over HTTP


def cli_actor() -> Actor:
    """The operator at this machine's shell."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's uid)
        user = "unknown"
    return Actor(f"cli:{user}"[:200])


SYSTEM = Actor("system")  # the server's own changes (the first account at start)
