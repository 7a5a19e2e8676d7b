"""Raw usage records past their retention are deleted in chunks; the daily
rollups, the ledger and every report read from them stay as they were."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from typer.testing import CliRunner

from moonbase.billing import usage_retention
from moonbase.cli import app
from moonbase.settings import Settings, UsageSettings
from moonbase.store.database import Database
from moonbase.store.repositories import usage as usage_repo
from moonbase.store.tables import LedgerEntry, UsageRecord
from tests.store.test_usage_rollups import organisation, record, rollups, write_at

NOW = datetime(2027, 3, 1, 12, tzinfo=UTC)


async def request_ids(db: Database) -> set[str]:
    async with db.read() as session:
        return set(await session.scalars(select(UsageRecord.request_id)))


async def test_old_records_go_in_chunks_and_the_rollups_stay(database: Database):
    account, (key, _) = await organisation(database)
    ages = {f"old-{n}": 40 + n for n in range(10)} | {"edge": 31, "new-0": 1, "new-1": 0}
    for request_id, days in sorted(ages.items(), key=lambda item: -item[1]):  # oldest first
        await write_at(
            database, NOW - timedelta(days=days), record(request_id, account, api_key_id=key)
        )
    async with database.transaction() as session:  # a charge's ledger entry, for one old record
        session.add(LedgerEntry(account_id=account, kind="charge", cash_micro=-7, voucher_micro=0,
                                reason="chat completion", reference="old-0"))  # fmt: skip
    kept = await rollups(database)
    async with database.read() as session:
        report = await usage_repo.summarize(session, "day", account)

    deleted = await usage_retention.prune(database, 32, chunk=3, now=NOW)
    assert deleted == 10
    assert await request_ids(database) == {"edge", "new-0", "new-1"}
    assert await rollups(database) == kept
    async with database.read() as session:
        assert await usage_repo.summarize(session, "day", account) == report
        assert await session.scalar(select(func.count()).select_from(LedgerEntry).where(
            LedgerEntry.reference == "old-0")) == 1  # fmt: skip
    assert await usage_retention.prune(database, 32, chunk=3, now=NOW) == 0


async def test_pruning_runs_in_the_background(database: Database):
    account, _ = await organisation(database)
    await write_at(database, datetime.now(UTC) - timedelta(days=500), record("ancient", account))
    await write_at(database, datetime.now(UTC), record("fresh", account))
    task = asyncio.create_task(usage_retention.prune_periodically(database, UsageSettings()))
    try:
        for _ in range(600):  # the first pass starts at once
            if await request_ids(database) == {"fresh"}:
                break
            await asyncio.sleep(0.05)
        assert await request_ids(database) == {"fresh"}
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_retention_zero_keeps_every_record(database: Database):
    account, _ = await organisation(database)
    await write_at(database, datetime.now(UTC) - timedelta(days=5000), record("ancient", account))
    off = UsageSettings(raw_retention_days=0)
    await asyncio.wait_for(usage_retention.prune_periodically(database, off), 60)  # returns
    assert await request_ids(database) == {"ancient"}


def test_retention_is_a_month_at_least_or_off():
    assert UsageSettings().raw_retention_days == 400
    assert UsageSettings(raw_retention_days=0).raw_retention_days == 0  # kept for ever
    for days in (7, 31, -1):
        with pytest.raises(ValidationError):
            UsageSettings(raw_retention_days=days)
    assert Settings(usage={"raw_retention_days": 90}).usage.raw_retention_days == 90


def test_the_cli_prunes_and_still_reports(tmp_path: Path):
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    pruned = runner.invoke(app, ["usage", "prune", "--older-than-days", "40", *data])
    assert pruned.exit_code == 0, pruned.output
    assert "deleted 0 usage records older than 40 days" in pruned.stdout
    too_short = runner.invoke(app, ["usage", "prune", "--older-than-days", "3", *data])
    assert too_short.exit_code != 0
    report = runner.invoke(app, ["usage", "--by", "day", *data])
    assert report.exit_code == 0 and report.stdout.startswith("TOTAL")
