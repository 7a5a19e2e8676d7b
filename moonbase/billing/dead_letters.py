"""Charges the database refused on their own, set aside for an operator.

The group commit commits charges together; when a group fails, each charge is
tried alone, and one the database still refuses for what it holds (not for
being unreachable) is written here instead of being retried forever. Retrying
it would never succeed, and while it sat in the queue every later charge of
every account waited behind it. A line holds the charge exactly as the
journal had it and the database's error; `moonbase dead-letters`
lists them. Nothing reads this file back automatically: a refused charge
needs a person to decide what it should have been.

Lines are JSON with every non-ASCII character escaped, so even text the
database could not hold (a lone surrogate) is written faithfully.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from moonbase.billing.journal import Entry

FILE_NAME = "dead-letters.jsonl"


class DeadLetters:
    def __init__(self, folder: Path | None) -> None:
        self.path = folder / FILE_NAME if folder is not None else None
        self.count = 0  # set aside by this process

    def add(self, entry: Entry, error: BaseException) -> None:
        self.count += 1
        if self.path is None:
            return
        line = json.dumps(
            {
                "at": time.time(),
                "error": f"{type(error).__name__}: {error}"[:2000],
                "charge": entry.as_dict(),
            },
            ensure_ascii=True,
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode() + b"\n")
        finally:
            os.close(fd)


def read(folder: Path) -> list[dict[str, Any]]:
    """Every charge set aside in ``folder``, oldest first."""
    path = folder / FILE_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
