"""Charges handed to the group commit but not yet committed, on local disk.

A request's response does not wait for its charge's transaction; the charge
is first appended here (one ``write``: it survives the process being
killed, as the operating system holds it) and the line is dropped once the
charge has committed. A gateway that crashes leaves its file behind; the
next one to start on the same data directory commits what is in it, skipping
charges already recorded (usage records are unique per request id), so a
charge is neither lost nor made twice.

Each process writes its own file and holds an exclusive ``flock`` on it while
it lives, so a starting process only takes over files whose owner is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from moonbase.store.repositories.usage import GenerationUsage


@dataclass(frozen=True)
class Entry:
    request_id: str
    api_key_id: str | None
    record: GenerationUsage
    batch: bool

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.api_key_id, "batch": self.batch, "record": self.record.__dict__}

    def encode(self) -> bytes:
        try:
            return orjson.dumps(self.as_dict())
        except orjson.JSONEncodeError:
            # Text orjson will not write (a lone surrogate) must still be
            # journaled: escaped, it reads back as it was.
            return json.dumps(self.as_dict(), ensure_ascii=True).encode()

    @staticmethod
    def decode(line: bytes) -> Entry:
        try:
            raw: dict[str, Any] = orjson.loads(line)
        except orjson.JSONDecodeError:
            raw = json.loads(line)  # what encode escaped for orjson (a lone surrogate)
        record = GenerationUsage(**raw["record"])
        return Entry(record.request_id, raw["key"], record, bool(raw["batch"]))


class ChargeJournal:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"charges-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # alive: recovery leaves this file alone

    def append(self, entry: Entry) -> None:
        os.write(self._fd, entry.encode() + b"\n")

    def clear(self) -> None:
        """Everything appended so far has committed."""
        os.ftruncate(self._fd, 0)

    def close(self) -> None:
        empty = os.fstat(self._fd).st_size == 0
        os.close(self._fd)
        if empty:
            self.path.unlink(missing_ok=True)


def orphans(folder: Path) -> Iterator[tuple[Path, list[Entry]]]:
    """Files of processes that are gone, with their entries; each file stays
    locked while the caller commits its entries, and is deleted after."""
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("charges-*.jsonl")):
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its process is alive
                continue
            with open(fd, "rb", closefd=False) as handle:
                lines = [line for line in handle.read().splitlines() if line.strip()]
            entries = []
            for line in lines:
                with contextlib.suppress(ValueError, KeyError, TypeError):  # a torn last line
                    entries.append(Entry.decode(line))
            yield path, entries
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
