"""Workers take turns: a batch runs for a turn (``batches.turn_s``), then the
batch of the account served least recently is next, so one account's long
batch never holds another's back; on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from moonbase.store.database import Database
from moonbase.store.tables import Batch, UsageRecord
from tests.batches.harness import Batches, batches_app, jsonl, request_line


async def _submit(batches: Batches, lines: int, who: dict[str, str], tag: str) -> str:
    file_id = await batches.upload(
        jsonl([request_line(f"{tag}{n}") for n in range(lines)]), who=who
    )
    created = await batches.create(file_id, who=who)
    assert created.status_code == 200, created.text
    return str(created.json()["id"])


async def _status(batches: Batches, batch_id: str) -> tuple[str, int]:
    async with batches.db.read() as session:
        batch = await session.get(Batch, batch_id, populate_existing=True)
    assert batch is not None
    return batch.status, batch.completed


async def test_a_small_batch_finishes_while_a_long_one_of_another_account_runs(
    database: Database, tmp_path: Path
) -> None:
    async with batches_app(database, tmp_path, concurrency=1, turn_s=0) as batches:
        long = await _submit(batches, 40, batches.headers, "long")
        small = await _submit(batches, 2, batches.other, "small")
        steps = 0
        while (await _status(batches, small))[0] != "completed":
            assert await batches.worker.step()
            steps += 1
            assert steps < 30, "the small batch never had its turns"
        status, completed = await _status(batches, long)
        assert status == "in_progress" and 0 < completed < 40, (status, completed)
        await batches.drain()
        assert await _status(batches, long) == ("completed", 40)
        # Every line ran and was charged once, whatever the turns.
        for batch_id, lines in ((long, 40), (small, 2)):
            async with batches.db.read() as session:
                charged = await session.scalar(
                    select(func.count()).where(
                        UsageRecord.request_id.startswith(f"batch-{batch_id}-")
                    )
                )
            assert charged == lines
        output = await batches.lines_of((await batches.get(long))["output_file_id"])
        assert sorted(line["custom_id"] for line in output) == sorted(f"long{n}" for n in range(40))


async def test_accounts_take_turns_before_an_accounts_own_batches_do(
    database: Database, tmp_path: Path
) -> None:
    """Account A's two batches come first, B's after: the turns go A1, B1,
    A2, B1, A1, not A1, A2, B1."""
    async with batches_app(database, tmp_path, concurrency=1, turn_s=0) as batches:
        a1 = await _submit(batches, 20, batches.headers, "a1-")
        a2 = await _submit(batches, 20, batches.headers, "a2-")
        b1 = await _submit(batches, 20, batches.other, "b1-")
        names = {a1: "A1", a2: "A2", b1: "B1"}
        turns = []
        for _ in range(5):
            assert await batches.worker.step()
            async with batches.db.read() as session:
                served = await session.scalar(
                    select(Batch.id)
                    .where(Batch.id.in_(names))
                    .order_by(Batch.served_at.desc().nulls_last())
                    .limit(1)
                )
            turns.append(names[str(served)])
        assert turns == ["A1", "B1", "A2", "B1", "A1"], turns
