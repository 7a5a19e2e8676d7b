"""A 30-day usage query over 1,000,000 raw usage records, SQLite and PostgreSQL.

Issue 18's target: an organisation's usage for 30 days, grouped by day and
model, answers in under 300 ms p95 on both databases. For each database this
loads the records (spread over 60 days, several organisations, projects,
keys and models; one organisation holds 40 % of them), builds the daily
rollups with migration 0009's own backfill statement (the bulk load does not
go through the charge path: a million group commits would take hours here;
tests/store/test_usage_rollups.py proves the charge path's rollups equal this
sum), checks that the rollups answer what the raw records answer, then times,
alternating, the query the organisation usage API runs
(``usage_rollups.buckets``, a read session each) and the same query over the
raw records (the old way: GROUP BY over ``usage_records``).

    .venv/bin/python bench/usage_query_bench.py --records 1000000 --runs 50

PostgreSQL: a fresh database on ``--pg-dsn``'s server, dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import random
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from moonbase.store.database import MIGRATIONS, Database
from moonbase.store.repositories import usage_rollups
from moonbase.store.tables import UsageRecord

MODELS = ["moonshot-v1-8k", "moonshot-v1-32k", "moonshot-v1-128k", "kimi-k2-turbo-preview",
          "kimi-k2-0905-preview", "kimi-latest"]  # fmt: skip
ACCOUNTS = 5
PROJECTS = 4  # per account
KEYS = 3  # per project
DAYS = 60
WINDOW = 30
COLUMNS = ["request_id", "account_id", "api_key_id", "project_id", "model", "prompt_tokens",
           "completion_tokens", "cached_tokens", "status", "created_at", "cost_micro",
           "latency_ms"]  # fmt: skip


def backfill_statement(dialect: str) -> str:
    """Migration 0009's backfill, as it runs at upgrade."""
    path = MIGRATIONS / "versions" / "0009_usage_rollups.py"
    spec = importlib.util.spec_from_file_location("usage_rollups_migration", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.backfill(dialect))


def account_id(n: int) -> str:
    return f"acct-bench{n}"


def key_id(account: int, project: int, key: int) -> str:
    return f"key-bench{account}-{project}-{key}"


def project_id(account: int, project: int) -> str:
    return f"proj-bench{account}-{project}"


def records(count: int, today: date, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    """``count`` usage records over the DAYS days up to ``today`` (UTC) included."""
    rng = random.Random(seed)
    start = datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=DAYS - 1)
    weights = [4, 2, 2, 1, 1]  # account 0: 40 % of the records
    for n in range(count):
        account = rng.choices(range(ACCOUNTS), weights)[0]
        project, key = rng.randrange(PROJECTS), rng.randrange(KEYS)
        no_key = rng.random() < 0.02  # a few records without a key or project
        prompt = rng.randrange(20, 8000)
        completion = rng.randrange(1, 1000)
        yield (
            f"req-bench-{n:08d}",
            account_id(account),
            None if no_key else key_id(account, project, key),
            None if no_key else project_id(account, project),
            rng.choice(MODELS),
            prompt,
            completion,
            rng.randrange(0, prompt),
            "completed",
            start + timedelta(seconds=rng.randrange(DAYS * 86400)),
            prompt * 2 + completion * 10,
            rng.randrange(50, 5000),
        )


def owners() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    now = datetime.now(UTC)
    accounts = [(account_id(a), f"bench-{a}", now, 0, 0, 0) for a in range(ACCOUNTS)]
    projects = [(project_id(a, p), account_id(a), f"p{p}", now)
                for a in range(ACCOUNTS) for p in range(PROJECTS)]  # fmt: skip
    keys = [
        (key_id(a, p, k), account_id(a), project_id(a, p), "", secrets.token_hex(32), "sk-", now)
        for a in range(ACCOUNTS)
        for p in range(PROJECTS)
        for k in range(KEYS)
    ]
    return accounts, projects, keys


OWNER_SQL = {
    "accounts": "(id, name, created_at, cash_micro, voucher_micro, topped_up_micro)",
    "projects": "(id, account_id, name, created_at)",
    "api_keys": "(id, account_id, project_id, name, key_hash, display, created_at)",
}


def load_sqlite(path: Path, count: int, today: date) -> None:
    """Bulk insert through the plain sqlite3 driver, times as SQLAlchemy writes them."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA synchronous=OFF")
        for table, rows in zip(OWNER_SQL, owners(), strict=True):
            marks = ",".join("?" * len(rows[0]))
            connection.executemany(
                f"INSERT INTO {table} {OWNER_SQL[table]} VALUES ({marks})",
                [tuple(_sqlite_value(v) for v in row) for row in rows],
            )
        marks = ",".join("?" * len(COLUMNS))
        insert = f"INSERT INTO usage_records ({', '.join(COLUMNS)}) VALUES ({marks})"
        batch: list[tuple[Any, ...]] = []
        for row in records(count, today):
            batch.append(tuple(_sqlite_value(v) for v in row))
            if len(batch) == 50_000:
                connection.executemany(insert, batch)
                batch.clear()
        connection.executemany(insert, batch)
        connection.commit()
        connection.execute(backfill_statement("sqlite"))
        connection.commit()
    finally:
        connection.close()


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):  # SQLAlchemy's SQLite DATETIME text, in UTC
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


async def load_postgresql(url: str, count: int, today: date) -> None:
    """COPY, then the backfill, then ANALYZE (autovacuum would, on a live server)."""
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for table, rows in zip(OWNER_SQL, owners(), strict=True):
            columns = OWNER_SQL[table].strip("()").split(", ")
            await connection.copy_records_to_table(table, records=rows, columns=columns)
        batch: list[tuple[Any, ...]] = []
        for row in records(count, today):
            batch.append(row)
            if len(batch) == 100_000:
                await connection.copy_records_to_table(
                    "usage_records", records=batch, columns=COLUMNS
                )
                batch.clear()
        await connection.copy_records_to_table("usage_records", records=batch, columns=COLUMNS)
        await connection.execute(backfill_statement("postgresql"))
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


def raw_query(db: Database, account: str, since: date, until: date) -> Any:
    """The old way: the same buckets summed from the raw records."""
    start = datetime(since.year, since.month, since.day, tzinfo=UTC)
    end = datetime(until.year, until.month, until.day, tzinfo=UTC)
    if db.is_sqlite:
        day = func.date(UsageRecord.created_at)
    else:
        day = func.date(func.timezone("UTC", UsageRecord.created_at))
    return (
        select(day, UsageRecord.model, func.count(), func.sum(UsageRecord.prompt_tokens),
               func.sum(UsageRecord.cached_tokens), func.sum(UsageRecord.completion_tokens),
               func.sum(UsageRecord.cost_micro))
        .where(UsageRecord.account_id == account, UsageRecord.created_at >= start,
               UsageRecord.created_at < end)
        .group_by(day, UsageRecord.model)
    )  # fmt: skip


async def timed(action: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await action()
    return (time.perf_counter() - started) * 1000, result


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def measure(db: Database, runs: int, raw_runs: int, today: date) -> dict[str, Any]:
    account = account_id(0)
    since, until = today - timedelta(days=WINDOW - 1), today + timedelta(days=1)

    async def rollup() -> list[usage_rollups.RollupRow]:
        async with db.read() as session:
            return await usage_rollups.buckets(session, account, since, until, ("model",))

    async def raw() -> list[Any]:
        async with db.read() as session:
            return list(await session.execute(raw_query(db, account, since, until)))

    _, rows = await timed(rollup)  # warm: the first read opens the pool
    _, old = await timed(raw)
    from_raw = {(str(d), m): [int(v) for v in sums] for d, m, *sums in old}
    from_rollups = {
        (str(r.day), r.model): [r.requests, r.prompt_tokens, r.cached_tokens,
                                r.completion_tokens, r.cost_micro]
        for r in rows
    }  # fmt: skip
    assert from_rollups == from_raw, "the rollups do not answer what the raw records answer"
    fast: list[float] = []
    slow: list[float] = []
    for n in range(runs):  # alternating, so both see the same machine
        fast.append((await timed(rollup))[0])
        if n < raw_runs:
            slow.append((await timed(raw))[0])
    async with db.read() as session:
        rollup_rows = await session.scalar(text("SELECT count(*) FROM usage_daily"))
        window_records = sum(v[0] for v in from_raw.values())
    return {
        "buckets": len(rows),
        "rollup_rows": rollup_rows,
        "window_records": window_records,
        "fast": fast,
        "slow": slow,
    }


async def run_one(kind: str, args: argparse.Namespace, today: date) -> dict[str, Any]:
    folder = tempfile.TemporaryDirectory(prefix="usage-bench-")
    pg_name = f"moonbase_bench_{secrets.token_hex(6)}"
    base = args.pg_dsn.rsplit("/", 1)[0]
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{Path(folder.name) / 'moonbase.db'}"
    else:
        admin = await asyncpg.connect(args.pg_dsn)
        await admin.execute(f'CREATE DATABASE "{pg_name}"')
        await admin.close()
        url = f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{pg_name}"
    db = Database(url)
    try:
        await db.migrate()
        started = time.perf_counter()
        if kind == "sqlite":
            await asyncio.to_thread(
                load_sqlite, Path(folder.name) / "moonbase.db", args.records, today
            )
        else:
            await load_postgresql(url, args.records, today)
        load_s = time.perf_counter() - started
        print(f"{kind}: loaded {args.records:,} records and their rollups in {load_s:.1f} s",
              flush=True)  # fmt: skip
        result = await measure(db, args.runs, args.raw_runs, today)
        return {"kind": kind, "load_s": load_s, **result}
    finally:
        await db.dispose()
        if kind == "postgresql":
            admin = await asyncpg.connect(args.pg_dsn)
            await admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            await admin.close()
        folder.cleanup()


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"\n{args.records:,} raw records over {DAYS} days; one organisation's last {WINDOW} "
        f"days by day and model; {args.runs} rollup runs, {args.raw_runs} raw runs\n"
    )
    print(
        "| database | records in the window | rollup rows (all) | buckets | rollups p50 ms "
        "| rollups p95 ms | raw p50 ms | raw p95 ms | raw / rollups (p50) | p95 < 300 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        fast_p50, fast_p95 = statistics.median(r["fast"]), percentile(r["fast"], 0.95)
        slow_p50, slow_p95 = statistics.median(r["slow"]), percentile(r["slow"], 0.95)
        print(f"| {r['kind']} | {r['window_records']:,} | {r['rollup_rows']:,} | {r['buckets']} | "
              f"{fast_p50:.2f} | {fast_p95:.2f} | {slow_p50:.1f} | {slow_p95:.1f} | "
              f"{slow_p50 / fast_p50:.0f}x | {'yes' if fast_p95 < 300 else 'NO'} |")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--raw-runs", type=int, default=20, help="raw-record runs (slow)")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    today = datetime.now(UTC).date()
    results = [await run_one(kind, args, today) for kind in args.databases.split(",")]
    report(results, args)


if __name__ == "__main__":
    asyncio.run(main())
