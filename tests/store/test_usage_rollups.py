"""Daily usage rollups, on SQLite and PostgreSQL: whatever charges arrive (any
organisation, project, key, model and day, with or without a project or key,
in groups, with request ids charged twice), every rollup row is the sum of
the raw records it covers, and no charge is counted twice."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from moonbase import admin
from moonbase.auth.caller import KeyOwner
from moonbase.billing.journal import Entry
from moonbase.billing.service import BillingService, Settlement, Ticket
from moonbase.settings import BillingSettings
from moonbase.store.database import Database
from moonbase.store.repositories import charges, projects, usage_rollups
from moonbase.store.repositories import usage as usage_repo
from moonbase.store.repositories.usage import GenerationUsage
from moonbase.store.tables import UsageDaily, UsageRecord
from tests.batches.harness import batches_app, request_line

MODELS = ("moonshot-v1-8k", "kimi-k2-turbo-preview", "moonshot-v1-128k")
MIDNIGHT = datetime(2026, 11, 30, tzinfo=UTC)
RollupKey = tuple[str, date, str, str, str]


async def organisation(db: Database) -> tuple[str, list[str]]:
    """A new account and two keys of it: (account id, key ids)."""
    name = f"org-{secrets.token_hex(4)}"
    keys = [(await admin.create_key(db, name)).id for _ in range(2)]
    return (await admin.find_account(db, name)).id, keys


async def raw_sums(db: Database) -> dict[RollupKey, list[int]]:
    """What the rollups must hold, summed here from every raw record."""
    sums: dict[RollupKey, list[int]] = {}
    async with db.read() as session:
        for r in await session.scalars(select(UsageRecord)):
            day = usage_rollups.utc_day(r.created_at)
            key = (r.account_id, day, r.project_id or "", r.api_key_id or "", r.model)
            row = sums.setdefault(key, [0, 0, 0, 0, 0])
            for i, value in enumerate(
                (1, r.prompt_tokens, r.cached_tokens, r.completion_tokens, r.cost_micro)
            ):
                row[i] += value
    return sums


async def rollups(db: Database) -> dict[RollupKey, list[int]]:
    async with db.read() as session:
        rows = await session.scalars(select(UsageDaily))
        return {
            (r.account_id, r.day, r.project_id, r.api_key_id, r.model): [
                r.requests, r.prompt_tokens, r.cached_tokens, r.completion_tokens, r.cost_micro
            ]
            for r in rows
        }  # fmt: skip


async def assert_rollups_are_the_raw_sums(db: Database) -> None:
    assert await rollups(db) == await raw_sums(db)


@dataclass(frozen=True)
class Spec:
    """One charge as drawn: indexes into the example's organisations and pools."""

    request: int
    account: int
    project: int | None
    key: int | None
    model: int
    prompt: int
    cached: int
    completion: int


charge_specs = st.builds(
    Spec,
    request=st.integers(0, 11),  # a small pool: the same request id comes back
    account=st.integers(0, 1),
    project=st.none() | st.integers(0, 1),
    key=st.none() | st.integers(0, 1),
    model=st.integers(0, len(MODELS) - 1),
    prompt=st.integers(0, 200_000),
    cached=st.integers(0, 1000),
    completion=st.integers(0, 50_000),
)
# A group: its charges, and when it commits: a day offset and seconds into it
# (None: through the live billing path, today), near midnight more often.
groups = st.lists(
    st.tuples(
        st.lists(charge_specs, min_size=1, max_size=6),
        st.none()
        | st.tuples(
            st.integers(-3, 3),
            st.sampled_from([0, 1, 43_200, 86_399]) | st.integers(0, 86_399),
        ),
    ),
    min_size=1,
    max_size=5,
)


@pytest.fixture
def orgs() -> list[tuple[str, list[str]]]:
    return []  # made on the first example, shared by the rest (one database)


@settings(
    max_examples=35,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(drawn=groups)
async def test_rollups_are_always_the_sums_of_their_raw_records(
    database: Database, orgs: list[tuple[str, list[str]]], drawn
):
    if not orgs:
        orgs.extend([await organisation(database), await organisation(database)])
    prefix = secrets.token_hex(4)
    billing = BillingService(database, BillingSettings(commit_interval_s=0))

    def usage_of(spec: Spec) -> GenerationUsage:
        account_id, keys = orgs[spec.account]
        return GenerationUsage(
            request_id=f"{prefix}-{spec.request}",
            account_id=account_id,
            api_key_id=None if spec.key is None else keys[spec.key],
            project_id=None if spec.project is None else f"proj-{spec.account}-{spec.project}",
            model=MODELS[spec.model],
            prompt_tokens=spec.prompt,
            completion_tokens=spec.completion,
            cached_tokens=min(spec.cached, spec.prompt),
            status="completed",
            cost_micro=spec.prompt + spec.completion,  # the direct path writes it as given
        )

    expected: dict[str, GenerationUsage] = {}
    for specs, when in drawn:
        group = [usage_of(spec) for spec in specs]
        ids = [u.request_id for u in group]
        if when is None:  # the live path: a refused group is retried charge by charge
            for u in group:
                owner = KeyOwner(u.api_key_id or "", u.account_id)
                await billing.settle(Ticket(u.request_id, owner, time.monotonic()), u)
                expected.setdefault(u.request_id, u)
            await billing.flushed()
            continue
        now = MIDNIGHT + timedelta(days=when[0], seconds=when[1])

        def work(connection, group=group, now=now):
            accounts = charges.lock_accounts(connection, (u.account_id for u in group))
            charges.write(connection, [charges.Charge(u) for u in group], accounts.values(), now)

        if len(set(ids)) < len(ids) or expected.keys() & set(ids):
            with pytest.raises(IntegrityError):  # the whole group, rollups too
                await database.write_sync(work)
        else:
            await database.write_sync(work)
            expected.update((u.request_id, u) for u in group)
    await billing.close()

    async with database.read() as session:
        records = await session.scalars(
            select(UsageRecord).where(UsageRecord.request_id.like(f"{prefix}-%"))
        )
        found = {
            r.request_id: (r.account_id, r.api_key_id, r.project_id, r.model,
                           r.prompt_tokens, r.cached_tokens, r.completion_tokens)
            for r in records
        }  # fmt: skip
    assert found == {
        u.request_id: (u.account_id, u.api_key_id, u.project_id, u.model,
                       u.prompt_tokens, u.cached_tokens, u.completion_tokens)
        for u in expected.values()
    }  # fmt: skip
    await assert_rollups_are_the_raw_sums(database)


def record(request_id: str, account_id: str, **fields) -> GenerationUsage:
    values = {"api_key_id": None, "model": MODELS[0], "prompt_tokens": 100,
              "completion_tokens": 10, "cached_tokens": 0, "status": "completed",
              "cost_micro": 7, **fields}  # fmt: skip
    return GenerationUsage(request_id=request_id, account_id=account_id, **values)


async def write_at(db: Database, now: datetime, *usages: GenerationUsage) -> None:
    def work(connection):
        accounts = charges.lock_accounts(connection, (u.account_id for u in usages))
        charges.write(connection, [charges.Charge(u) for u in usages], accounts.values(), now)

    await db.write_sync(work)


async def test_buckets_group_filter_and_order_by_day(database: Database):
    account, (key_a, key_b) = await organisation(database)
    other, _ = await organisation(database)
    day = MIDNIGHT
    await write_at(database, day - timedelta(seconds=1),  # the day before, in UTC
                   record("r0", account, api_key_id=key_a, project_id="p1"))  # fmt: skip
    await write_at(
        database,
        day,
        record("r1", account, api_key_id=key_a, project_id="p1", model=MODELS[1]),
        record("r2", account, api_key_id=key_b, project_id="p1"),
        record("r3", account),  # no key, no project
        record("r4", other, api_key_id=None, project_id="p9"),  # another organisation
    )
    later = record("r5", account, api_key_id=key_b, project_id="p2", cost_micro=5)
    await write_at(database, day + timedelta(days=1, hours=23), later)
    since, until = (day - timedelta(days=1)).date(), (day + timedelta(days=2)).date()
    async with database.read() as session:
        by_day = await usage_rollups.buckets(session, account, since, until)
        assert [(r.day, r.requests, r.cost_micro) for r in by_day] == [
            (since, 1, 7), (day.date(), 3, 21), (day.date() + timedelta(days=1), 1, 5)
        ]  # fmt: skip
        assert {(r.project_id, r.api_key_id, r.model) for r in by_day} == {(None, None, None)}
        full = await usage_rollups.buckets(
            session, account, day.date(), day.date() + timedelta(days=1),
            group_by=("model", "key", "project"),
        )  # fmt: skip
        assert [(r.project_id, r.api_key_id, r.model, r.requests) for r in full] == sorted(
            [(None, None, MODELS[0], 1), ("p1", key_a, MODELS[1], 1), ("p1", key_b, MODELS[0], 1)],
            key=lambda row: (row[0] or "", row[1] or "", row[2]),
        )
        assert full[0].prompt_tokens == 100 and full[0].completion_tokens == 10
        one_key = await usage_rollups.buckets(session, account, since, until, ("model",),
                                              api_key_id=key_b)  # fmt: skip
        assert [(r.day, r.model, r.requests) for r in one_key] == [
            (day.date(), MODELS[0], 1), (day.date() + timedelta(days=1), MODELS[0], 1)
        ]  # fmt: skip
        project = await usage_rollups.buckets(session, account, since, until, ("project",),
                                              project_id="p1", models=[MODELS[1]])  # fmt: skip
        assert [(r.day, r.project_id, r.requests) for r in project] == [(day.date(), "p1", 1)]
        # until is exclusive; an empty range is no rows
        assert await usage_rollups.buckets(session, account, since, since) == []
        assert [
            r.day for r in await usage_rollups.buckets(session, account, since, day.date())
        ] == [since]
        with pytest.raises(ValueError, match="planet"):
            await usage_rollups.buckets(session, account, since, until, ("planet",))
    await assert_rollups_are_the_raw_sums(database)


async def test_reports_and_budgets_count_whole_utc_days(database: Database):
    account, (key, _) = await organisation(database)
    day = MIDNIGHT
    await write_at(database, day - timedelta(minutes=1), record("a", account, project_id="p"))
    await write_at(database, day + timedelta(hours=12), record("b", account, project_id="p"),
                   record("c", account, api_key_id=key, model=MODELS[1]))  # fmt: skip
    await write_at(database, day + timedelta(days=1), record("d", account, project_id="p"))
    async with database.read() as session:
        summary = await usage_repo.summarize(session, "day", account)
        assert [(r.group, r.requests) for r in sorted(summary, key=lambda r: r.group)] == [
            ("2026-11-29", 1), ("2026-11-30", 2), ("2026-12-01", 1)
        ]  # fmt: skip
        # Mid-day bounds widen to the days they fall in: the 30th, whole.
        noon = await usage_repo.summarize(session, "model", account, day + timedelta(hours=13),
                                          day + timedelta(hours=14))  # fmt: skip
        assert {(r.group, r.requests) for r in noon} == {(MODELS[0], 1), (MODELS[1], 1)}
        # Midnight as until is exclusive: the day it starts is not counted.
        before = await usage_repo.summarize(session, "day", account, None, day)
        assert [r.group for r in before] == ["2026-11-29"]
        # The calendar's ends are a range like any other.
        ends = await usage_repo.summarize(
            session, "account", account,
            datetime.min.replace(tzinfo=timezone(timedelta(hours=8))),
            datetime.max.replace(tzinfo=timezone(timedelta(hours=-5))),
        )  # fmt: skip
        assert [(r.group, r.requests) for r in ends] == [(account, 4)]
        by_key = await usage_repo.summarize(session, "key", account)
        assert {(r.group, r.requests) for r in by_key} == {("", 3), (key, 1)}
        by_project = await usage_repo.summarize(session, "project", account, project_id="p")
        assert [(r.group, r.requests, r.cost_micro) for r in by_project] == [("p", 3, 21)]
        assert await projects.spent_since(session, "p", day) == 14  # the 30th on
        assert await projects.spent_since(session, "p", day + timedelta(days=1)) == 7  # December
        assert await projects.spent_since(session, "p", day.replace(day=1)) == 21  # November on


async def test_concurrent_gateways_never_lose_an_increment(database: Database):
    """Two gateways (two connection pools, as two processes) settle groups of
    the same organisation, key and model at once: every one is counted."""
    account, (key, _) = await organisation(database)
    second = Database(database.url)
    try:
        gateways = [BillingService(db, BillingSettings()) for db in (database, second)]
        owner = KeyOwner(key, account)

        async def charge(billing: BillingService, n: int) -> None:
            group = [
                Settlement(Ticket(f"c-{n}-{i}", owner, time.monotonic()),
                           record(f"c-{n}-{i}", account, api_key_id=key, project_id="p"))
                for i in range(3)
            ]  # fmt: skip
            await billing.settle_many(group)

        await asyncio.gather(*(charge(gateways[n % 2], n) for n in range(40)))
    finally:
        await second.dispose()
    rows = await rollups(database)
    ((requests, prompt, _, completion, cost),) = [
        sums for (acct, *_), sums in rows.items() if acct == account
    ]
    assert (requests, prompt, completion) == (120, 12_000, 1_200)
    assert cost > 0
    await assert_rollups_are_the_raw_sums(database)


async def test_a_recovered_journal_counts_each_charge_once(database: Database, tmp_path):
    account, (key, _) = await organisation(database)
    owner = KeyOwner(key, account)
    folder = tmp_path / "journal"
    dead = BillingService(database, BillingSettings(), journal_dir=folder)
    done = record("done", account, api_key_id=key)
    await dead.settle(Ticket("done", owner, 0.0), done)
    await dead.flushed()
    journal = dead._journal
    assert journal is not None
    journal.append(Entry("done", key, done, False))  # committed, and journaled still
    journal.append(Entry("lost", key, record("lost", account, api_key_id=key), False))
    os.close(journal._fd)  # the process died
    live = BillingService(database, BillingSettings(), journal_dir=folder)
    assert await live.recover() == 1
    await live.close()
    # and a charge replayed by hand, as a bug might, is refused whole
    with pytest.raises(IntegrityError):
        await write_at(database, datetime.now(UTC), done)
    assert sum(sums[0] for (acct, *_), sums in (await rollups(database)).items()
               if acct == account) == 2  # fmt: skip
    await assert_rollups_are_the_raw_sums(database)


async def test_batch_lines_land_in_the_rollups(database: Database, tmp_path):
    async with batches_app(database, tmp_path) as batches:
        await batches.submit([request_line(f"line-{n}") for n in range(5)])
        await batches.drain()
        async with database.read() as session:
            today = datetime.now(UTC).date()
            (row,) = await usage_rollups.buckets(
                session, batches.account_id, today - timedelta(days=1), today + timedelta(days=1)
            )
    assert row.requests == 5 and row.cost_micro > 0
    await assert_rollups_are_the_raw_sums(database)
