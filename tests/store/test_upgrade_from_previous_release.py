"""A database written by the previous release (schema 0005: accounts with
money, keys, usage, files, batches) upgrades to this one on SQLite and
PostgreSQL with nothing lost: every account becomes an organisation with a
``default`` project holding its keys, its usage, its files and its batches,
balances are as they were, and the keys still authenticate and find their
files and batches."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from moonbase.store.database import MIGRATIONS, Database
from moonbase.store.repositories import api_keys
from moonbase.store.repositories import batches as batch_rows
from moonbase.store.repositories import files as file_rows
from moonbase.store.repositories.api_keys import hash_key
from moonbase.store.tables import (
    Account,
    ApiKey,
    Batch,
    Project,
    StoredFile,
    UsageDaily,
    UsageRecord,
)
from tests.conftest import BOTH_DATABASES, empty_database

PREVIOUS_RELEASE = "0005"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SECRET = "sk-" + "A" * 48


def upgrade_to(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


@pytest.fixture(params=BOTH_DATABASES)
async def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with empty_database(request.param, tmp_path) as db:
        yield db


STATEMENTS = [
    (
        "INSERT INTO accounts (id, name, created_at, cash_micro, voucher_micro, topped_up_micro, "
        "tier_override) VALUES (:a, :name, :now, :cash, :voucher, :topped, 3)",
        [
            {"a": "acct-aaa", "name": "acme", "cash": 12_345_678, "voucher": 500_000,
             "topped": 20_000_000},
            {"a": "acct-bbb", "name": "beta", "cash": -1_000, "voucher": 0, "topped": 0},
        ],
    ),
    (
        "INSERT INTO api_keys (id, account_id, name, key_hash, display, created_at) "
        "VALUES (:k, :a, :name, :hash, :display, :now)",
        [
            {"k": "key-1", "a": "acct-aaa", "name": "laptop", "hash": hash_key(SECRET),
             "display": "sk-AAAA...AAAA"},
            {"k": "key-2", "a": "acct-bbb", "name": "ci", "hash": hash_key("sk-" + "B" * 48),
             "display": "sk-BBBB...BBBB"},
        ],
    ),
    (
        "INSERT INTO usage_records (request_id, account_id, api_key_id, model, prompt_tokens, "
        "completion_tokens, cached_tokens, status, created_at, cost_micro, latency_ms) "
        "VALUES (:r, :a, :k, 'moonshot-v1-8k', 10, 5, 0, 'completed', :now, :cost, 7)",
        [
            {"r": "req-1", "a": "acct-aaa", "k": "key-1", "cost": 1234},
            {"r": "req-2", "a": "acct-bbb", "k": "key-2", "cost": 99},
            {"r": "req-3", "a": "acct-aaa", "k": None, "cost": 5},
        ],
    ),
    (
        "INSERT INTO files (id, account_id, filename, purpose, bytes, status, content_type, "
        "sha256, blob_key, created_at) VALUES (:f, :a, 'report.pdf', 'file-extract', 2048, "
        "'ok', 'application/pdf', :sha, :blob, :now)",
        [{"f": "file-1", "a": "acct-aaa", "sha": "0" * 64, "blob": "ab/cd"}],
    ),
    (
        "INSERT INTO batches (id, account_id, api_key_id, endpoint, input_file_id, "
        "completion_window, status, metadata_json, total, completed, failed, created_at, "
        "expires_at) VALUES (:b, :a, :k, '/v1/chat/completions', 'file-1', '24h', "
        "'in_progress', '{}', 10, 4, 1, :t, :t2)",
        [{"b": "batch-1", "a": "acct-aaa", "k": "key-1", "t": time.time(),
          "t2": time.time() + 86400},
         {"b": "batch-2", "a": "acct-bbb", "k": None, "t": time.time(),
          "t2": time.time() + 86400}],
    ),
]  # fmt: skip


async def test_the_previous_releases_data_upgrades_intact(old_database: Database):
    db = old_database
    async with db.engine.begin() as connection:
        await connection.run_sync(upgrade_to, PREVIOUS_RELEASE)
        for statement, rows in STATEMENTS:
            for row in rows:
                await connection.execute(text(statement), {"now": NOW, **row})
    await db.migrate()  # what the new release does at start
    async with db.transaction() as session:
        accounts = {a.id: a for a in await session.scalars(select(Account))}
        assert (accounts["acct-aaa"].cash_micro, accounts["acct-aaa"].voucher_micro) == (
            12_345_678,
            500_000,
        )
        assert accounts["acct-aaa"].topped_up_micro == 20_000_000
        assert accounts["acct-aaa"].tier_override == 3
        assert accounts["acct-bbb"].cash_micro == -1_000  # arrears kept as arrears
        projects = {p.account_id: p for p in await session.scalars(select(Project))}
        assert set(projects) == {"acct-aaa", "acct-bbb"}
        assert {p.name for p in projects.values()} == {"default"}
        keys = {k.id: k for k in await session.scalars(select(ApiKey))}
        assert keys["key-1"].project_id == projects["acct-aaa"].id
        assert keys["key-2"].project_id == projects["acct-bbb"].id
        records = {r.request_id: r for r in await session.scalars(select(UsageRecord))}
        assert records["req-1"].project_id == projects["acct-aaa"].id
        assert records["req-1"].cost_micro == 1234 and records["req-2"].cost_micro == 99
        assert records["req-3"].project_id is None  # no key, no project
        # and the daily rollups (0009) hold them: no key or project is ""
        daily = {(d.account_id, d.project_id, d.api_key_id): (d.day, d.requests, d.cost_micro)
                 for d in await session.scalars(select(UsageDaily))}  # fmt: skip
        assert daily == {
            ("acct-aaa", projects["acct-aaa"].id, "key-1"): (NOW.date(), 1, 1234),
            ("acct-bbb", projects["acct-bbb"].id, "key-2"): (NOW.date(), 1, 99),
            ("acct-aaa", "", ""): (NOW.date(), 1, 5),
        }
        stored = await session.get(StoredFile, "file-1")
        assert stored is not None and stored.bytes == 2048 and stored.blob_key == "ab/cd"
        # Files and batches land in their account's default project (a batch: its key's).
        assert (stored.account_id, stored.project_id) == ("acct-aaa", projects["acct-aaa"].id)
        batch = await session.get(Batch, "batch-1")
        assert batch is not None and (batch.total, batch.completed, batch.failed) == (10, 4, 1)
        assert (batch.account_id, batch.project_id) == ("acct-aaa", projects["acct-aaa"].id)
        keyless = await session.get(Batch, "batch-2")
        assert keyless is not None and keyless.project_id == projects["acct-bbb"].id
        for project in projects.values():
            assert project.allowed_models is None and project.limit_rpm is None
        owner = await api_keys.authenticate(session, SECRET)
        assert owner is not None
        # ... where the account's keys still find them, and no other project does.
        assert await file_rows.get(session, "acct-aaa", "file-1", owner.project_id) is not None
        assert await batch_rows.get(session, "acct-aaa", "batch-1", owner.project_id) is not None
        assert await file_rows.get(session, "acct-aaa", "file-1", "proj-elsewhere") is None
        assert await file_rows.get(session, "acct-bbb", "file-1", projects["acct-bbb"].id) is None
    assert owner.key_id == "key-1"
    assert owner.project_id == projects["acct-aaa"].id
    assert owner.policy.expires_at is None and owner.policy.models is None
    assert owner.project.models is None and not owner.project.limits.any


async def test_batches_of_a_projects_key_move_into_that_project(old_database: Database):
    """Data written since projects (0008): a batch goes to its key's project, a file
    (which names no key) to the default one; the projects get no allowlist or limits."""
    db = old_database
    async with db.engine.begin() as connection:
        await connection.run_sync(upgrade_to, "0009")
        for statement, rows in STATEMENTS[:2]:
            for row in rows:
                await connection.execute(text(statement), {"now": NOW, **row})
        for project, account, name in [
            ("proj-aaa", "acct-aaa", "default"),
            ("proj-bbb", "acct-bbb", "default"),
            ("proj-team", "acct-aaa", "team"),
        ]:
            await connection.execute(
                text(
                    "INSERT INTO projects (id, account_id, name, created_at) "
                    "VALUES (:p, :a, :name, :now)"
                ),
                {"p": project, "a": account, "name": name, "now": NOW},
            )
        await connection.execute(text("UPDATE api_keys SET project_id = 'proj-team' "
                                      "WHERE id = 'key-1'"))  # fmt: skip
        for statement, rows in STATEMENTS[3:]:
            for row in rows:
                await connection.execute(text(statement), {"now": NOW, **row})
    await db.migrate()
    async with db.read() as session:
        batch = await session.get(Batch, "batch-1")
        stored = await session.get(StoredFile, "file-1")
        assert batch is not None and batch.project_id == "proj-team"
        assert stored is not None and stored.project_id == "proj-aaa"  # the default project
