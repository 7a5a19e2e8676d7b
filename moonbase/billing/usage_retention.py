"""Raw usage records older than ``usage.raw_retention_days`` are deleted.

Only the per-request records go. The daily rollups (``usage_daily``: what
reports, budgets and the usage API read) and the ledger (every debit, with
its request id as reference) are never pruned, so no sum anyone reads changes.

Deleting old records cannot make a charge count twice. The only reader that
looks records up by request id to skip charges already made is
``BillingService.recover``, and it looks up the entries of a crashed
process's charge journal: charges from that process's last run, which a
gateway clears once they commit. They are minutes or days old, never near
the 32-day minimum retention.

Records are deleted in id ranges of ``prune_chunk``, each in its own
transaction: PostgreSQL never holds one huge delete's locks and WAL, and
SQLite's one writer lock is let go between chunks so charges go on.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from moonbase.settings import UsageSettings
from moonbase.store.database import Database
from moonbase.store.repositories import usage as usage_repo
from moonbase.store.tables import utcnow

log = logging.getLogger(__name__)


async def prune(db: Database, older_than_days: int, chunk: int, now: datetime | None = None) -> int:
    """Delete the usage records older than ``older_than_days``; returns how many."""
    before = (now or utcnow()) - timedelta(days=older_than_days)
    deleted, start = 0, None
    while True:
        async with db.transaction() as session:
            count, start = await usage_repo.prune_from(session, start, chunk, before)
        deleted += count
        if start is None:
            return deleted
        await asyncio.sleep(0)  # between chunks, the charges waiting for the writer


async def prune_periodically(db: Database, settings: UsageSettings) -> None:
    """Prune now and then every ``prune_interval_s``, until cancelled."""
    days = settings.raw_retention_days
    if not days:  # 0: kept for ever
        return
    while True:
        try:
            deleted = await prune(db, days, settings.prune_chunk)
            if deleted:
                log.info("deleted %d usage records older than %d days", deleted, days)
        except Exception:
            # An unreachable database now is no reason to stop pruning later.
            log.exception("pruning usage records failed; trying again in %s s",
                          settings.prune_interval_s)  # fmt: skip
        await asyncio.sleep(settings.prune_interval_s)
