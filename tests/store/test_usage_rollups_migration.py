"""Migration 0009 sums every existing usage record into the daily rollups, by
UTC day on both databases: PostgreSQL's date() would use the session's time
zone (here Asia/Shanghai, eight hours ahead), SQLite keeps times as text."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, text

from moonbase.store.database import Database
from moonbase.store.tables import UsageRecord
from tests.conftest import BOTH_DATABASES, empty_database
from tests.store.test_upgrade_from_previous_release import upgrade_to
from tests.store.test_usage_rollups import assert_rollups_are_the_raw_sums, rollups

BEFORE = "0008"


@pytest.fixture(params=BOTH_DATABASES)
async def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with empty_database(request.param, tmp_path) as db:
        yield db


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


RECORDS = [  # (request, key, project, model, created at, cost)
    ("a", "key-1", "proj-aaa", "moonshot-v1-8k", at(29, 20), 100),  # the 30th in Shanghai
    ("b", "key-1", "proj-aaa", "moonshot-v1-8k", at(29, 23, 59), 10),
    ("c", "key-1", "proj-aaa", "moonshot-v1-8k", at(30, 0, 0), 1),
    ("d", None, None, "moonshot-v1-8k", at(30, 1), 2),  # no key, no project
    ("e", "key-1", "proj-aaa", "kimi-k2-turbo-preview", at(30, 2), 3),
]


async def test_existing_records_are_rolled_up_by_utc_day(old_database: Database):
    db = old_database
    async with db.engine.begin() as connection:
        await connection.run_sync(upgrade_to, BEFORE)
        if not db.is_sqlite:
            name = db.url.rsplit("/", 1)[1]
            await connection.execute(
                text(f"ALTER DATABASE \"{name}\" SET timezone TO 'Asia/Shanghai'")
            )
        await connection.execute(
            text("INSERT INTO accounts (id, name, created_at, cash_micro, voucher_micro, "
                 "topped_up_micro) VALUES ('acct-aaa', 'acme', :now, 0, 0, 0)"),
            {"now": at(1, 0)},
        )  # fmt: skip
        await connection.execute(
            text("INSERT INTO api_keys (id, account_id, name, key_hash, display, created_at) "
                 "VALUES ('key-1', 'acct-aaa', '', :hash, 'sk-...', :now)"),
            {"hash": "0" * 64, "now": at(1, 0)},
        )  # fmt: skip
        await connection.execute(
            insert(UsageRecord),
            [
                {"request_id": r, "account_id": "acct-aaa", "api_key_id": k, "project_id": p,
                 "model": m, "prompt_tokens": 10, "completion_tokens": 5, "cached_tokens": 1,
                 "status": "completed", "created_at": when, "cost_micro": cost}
                for r, k, p, m, when, cost in RECORDS
            ],
        )  # fmt: skip
    await db.engine.dispose()  # new connections: PostgreSQL's new time zone
    await db.migrate()
    v1, k2 = "moonshot-v1-8k", "kimi-k2-turbo-preview"
    assert await rollups(db) == {
        ("acct-aaa", date(2026, 11, 29), "proj-aaa", "key-1", v1): [2, 20, 2, 10, 110],
        ("acct-aaa", date(2026, 11, 30), "proj-aaa", "key-1", v1): [1, 10, 1, 5, 1],
        ("acct-aaa", date(2026, 11, 30), "", "", v1): [1, 10, 1, 5, 2],
        ("acct-aaa", date(2026, 11, 30), "proj-aaa", "key-1", k2): [1, 10, 1, 5, 3],
    }
    await assert_rollups_are_the_raw_sums(db)
