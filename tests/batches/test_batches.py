"""/v1/batches over a scripted engine, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from moonbase.batches.worker import BatchWorker
from moonbase.store.database import Database
from moonbase.store.tables import Account, Batch, UsageRecord
from tests.batches.harness import Batches, batches_app, jsonl, request_line
from tests.fakes import ScriptedEngine


@pytest.fixture
async def batches(database: Database, tmp_path: Path) -> AsyncIterator[Batches]:
    async with batches_app(database, tmp_path) as made:
        yield made


async def usage_rows(db: Database, account_id: str) -> list[UsageRecord]:
    async with db.read() as session:
        rows = await session.scalars(
            select(UsageRecord).where(UsageRecord.account_id == account_id)
        )
        return list(rows)


async def test_a_batch_runs_every_line_once_at_the_batch_price(batches: Batches) -> None:
    batch_id = await batches.submit([request_line(f"req-{n}", f"Say {n}") for n in range(20)])
    await batches.drain()
    batch = await batches.get(batch_id)
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 20, "completed": 20, "failed": 0}
    for stage in ("in_progress_at", "finalizing_at", "completed_at"):
        assert batch[stage] >= batch["created_at"]
    assert batch["error_file_id"] is None
    output = await batches.lines_of(batch["output_file_id"])
    assert sorted(line["custom_id"] for line in output) == sorted(f"req-{n}" for n in range(20))
    for line in output:
        assert line["response"]["status_code"] == 200
        assert line["response"]["body"]["choices"][0]["message"]["content"] == "ok"
        assert line["error"] is None
    records = await usage_rows(batches.db, batches.account_id)
    assert len(records) == 20
    # Batch price: half the list price (billing.batch_discount).
    listed = await batches.http.post(
        "/v1/chat/completions",
        headers=batches.headers,
        json=request_line("online", "Say 0")["body"],
    )
    assert listed.status_code == 200
    await batches.worker.billing.flushed()  # an online charge commits just after the reply
    batch_ids = {r.request_id for r in records}
    (online,) = [
        r for r in await usage_rows(batches.db, batches.account_id) if r.request_id not in batch_ids
    ]
    same = next(r for r in records if r.prompt_tokens == online.prompt_tokens)
    assert same.completion_tokens == online.completion_tokens
    assert online.cost_micro > 0
    assert same.cost_micro * 2 in (online.cost_micro, online.cost_micro + 1)
    files = await batches.http.get("/v1/files?purpose=batch_output", headers=batches.headers)
    assert [f["id"] for f in files.json()["data"]] == [batch["output_file_id"]]


async def test_lines_refused_at_run_time_go_to_the_error_file(batches: Batches) -> None:
    batch_id = await batches.submit([request_line(f"r{n}") for n in range(4)])
    await batches.drain()  # validates, then runs: all four fine
    assert (await batches.get(batch_id))["request_counts"]["completed"] == 4
    # An account without money: lines are refused when they run.
    async with batches.db.transaction() as session:
        await session.execute(
            update(Account)
            .where(Account.id == batches.account_id)
            .values(voucher_micro=0, cash_micro=0)
        )
    poor = await batches.submit([request_line("a"), request_line("b")])
    await batches.drain()
    batch = await batches.get(poor)
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 2, "completed": 0, "failed": 2}
    assert batch["output_file_id"] is None
    errors = await batches.lines_of(batch["error_file_id"])
    assert sorted(e["custom_id"] for e in errors) == ["a", "b"]
    for line in errors:
        assert line["response"]["status_code"] == 429
        assert line["response"]["body"]["error"]["type"] == "exceeded_current_quota_error"


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("not json", "not valid JSON"),
        ('["a list"]', "must be a JSON object"),
        ({"method": "POST", "url": "/v1/chat/completions", "body": {}}, "needs a custom_id"),
        ({**request_line("x"), "method": "GET"}, "method must be POST"),
        ({**request_line("x"), "url": "/v1/embeddings"}, "url must be /v1/chat/completions"),
        ({**request_line("x"), "body": {"model": "moonshot-v1-8k"}}, "body.messages"),
        (request_line("x", temperature=7), "temperature"),
        ({**request_line("x"), "body": {**request_line("x")["body"], "model": "gpt-4"}}, "gpt-4"),
    ],
)
async def test_validation_failures_name_the_line(batches: Batches, line, fragment: str) -> None:
    batch_id = await batches.submit([request_line("first"), line])
    await batches.drain()
    batch = await batches.get(batch_id)
    assert batch["status"] == "failed" and batch["failed_at"]
    (error,) = batch["errors"]["data"]
    assert error["line"] == 2
    assert fragment in error["message"]


async def test_duplicate_custom_ids_and_mixed_models_are_refused(batches: Batches) -> None:
    other_model = request_line("b")
    other_model["body"]["model"] = "kimi-k2-turbo-preview"
    batch_id = await batches.submit([request_line("a"), request_line("a"), other_model])
    await batches.drain()
    errors = (await batches.get(batch_id))["errors"]["data"]
    assert [(e["line"], e["code"]) for e in errors] == [
        (2, "duplicate_custom_id"),
        (3, "mixed_models"),
    ]


async def test_too_many_lines(database: Database, tmp_path: Path) -> None:
    async with batches_app(database, tmp_path, max_lines=3) as batches:
        batch_id = await batches.submit([request_line(f"r{n}") for n in range(4)])
        await batches.drain()
        (error,) = (await batches.get(batch_id))["errors"]["data"]
        assert error["code"] == "too_many_lines" and error["line"] == 4


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"completion_window": "1h"}, "completion_window"),
        ({"completion_window": "8d"}, "completion_window"),
        ({"completion_window": "tomorrow"}, "completion_window"),
        ({"endpoint": "/v1/embeddings"}, "endpoint"),
        ({"metadata": {f"k{n}": "v" for n in range(17)}}, "metadata"),
        ({"metadata": {"k" * 65: "v"}}, "metadata"),
        ({"metadata": {"k": "v" * 513}}, "metadata"),
    ],
)
async def test_create_refusals(batches: Batches, fields: dict, param: str) -> None:
    file_id = await batches.upload(jsonl([request_line("a")]))
    response = await batches.create(file_id, **fields)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


async def test_input_file_must_be_a_batch_file_of_the_caller(batches: Batches) -> None:
    document = await batches.upload(b"some text", purpose="file-extract")
    wrong = await batches.create(document)
    assert wrong.status_code == 400 and "purpose 'batch'" in wrong.json()["error"]["message"]
    theirs = await batches.upload(jsonl([request_line("a")]), who=batches.other)
    assert (await batches.create(theirs)).status_code == 404


async def test_windows_in_semantic_form(batches: Batches) -> None:
    file_id = await batches.upload(jsonl([request_line("a")]))
    for window, seconds in [("12h", 12 * 3600), ("3d", 3 * 86400), ("7d", 7 * 86400)]:
        batch = (await batches.create(file_id, completion_window=window)).json()
        assert batch["expires_at"] - batch["created_at"] == seconds
        assert batch["completion_window"] == window


@pytest.mark.parametrize("stage", ["validating", "in_progress", "finalizing"])
async def test_cancel_from_each_active_state(batches: Batches, stage: str) -> None:
    batch_id = await batches.submit([request_line(f"r{n}") for n in range(3)])
    if stage != "validating":
        async with batches.db.transaction() as session:
            await session.execute(update(Batch).where(Batch.id == batch_id).values(status=stage))
    cancelled = await batches.http.post(f"/v1/batches/{batch_id}/cancel", headers=batches.headers)
    assert cancelled.json()["status"] == "cancelling" and cancelled.json()["cancelling_at"]
    await batches.drain()
    batch = await batches.get(batch_id)
    assert batch["status"] == "cancelled" and batch["cancelled_at"]


@pytest.mark.parametrize("stage", ["completed", "failed", "expired", "cancelled", "cancelling"])
async def test_cancel_from_other_states_is_a_400(batches: Batches, stage: str) -> None:
    batch_id = await batches.submit([request_line("a")])
    async with batches.db.transaction() as session:
        await session.execute(update(Batch).where(Batch.id == batch_id).values(status=stage))
    response = await batches.http.post(f"/v1/batches/{batch_id}/cancel", headers=batches.headers)
    assert response.status_code == 400
    assert stage in response.json()["error"]["message"]


async def test_cancel_mid_run_keeps_the_finished_results(
    database: Database, tmp_path: Path
) -> None:
    engine = ScriptedEngine(reply="slow reply", delay=0.01)
    async with batches_app(database, tmp_path, engine=engine, concurrency=1) as batches:
        batch_id = await batches.submit([request_line(f"r{n}") for n in range(200)])
        running = asyncio.create_task(batches.drain())
        while (await batches.get(batch_id))["request_counts"]["completed"] < 3:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await batches.http.post(f"/v1/batches/{batch_id}/cancel", headers=batches.headers)
        await running
        await batches.drain()
        batch = await batches.get(batch_id)
        assert batch["status"] == "cancelled"
        done = batch["request_counts"]["completed"]
        assert 3 <= done < 200
        assert len(await batches.lines_of(batch["output_file_id"])) == done


async def test_expiry_keeps_the_finished_results(database: Database, tmp_path: Path) -> None:
    # The window ends when the test says (expires_at moved to now once a few
    # lines are done), not after a wall-clock race with a loaded machine.
    engine = ScriptedEngine(reply="slow reply", delay=0.05)
    async with batches_app(database, tmp_path, engine=engine, concurrency=1) as batches:
        batch_id = await batches.submit([request_line(f"r{n}") for n in range(500)])
        draining = asyncio.create_task(batches.drain())
        while (await batches.get(batch_id))["request_counts"]["completed"] < 3:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        async with database.transaction() as session:
            await session.execute(
                update(Batch).where(Batch.id == batch_id).values(expires_at=int(time.time()))
            )
        await draining
        batch = await batches.get(batch_id)
        assert batch["status"] == "expired" and batch["expired_at"] >= batch["expires_at"]
        done = batch["request_counts"]["completed"]
        assert 3 <= done < 500
        assert len(await batches.lines_of(batch["output_file_id"])) == done


async def test_a_crashed_worker_is_taken_over_and_no_line_runs_twice(
    database: Database, tmp_path: Path
) -> None:
    engine = ScriptedEngine(reply="reply", delay=0.005)
    async with batches_app(
        database, tmp_path, engine=engine, concurrency=2, claim_seconds=0.5
    ) as batches:
        batch_id = await batches.submit([request_line(f"r{n}") for n in range(60)])
        crashed = asyncio.create_task(batches.worker.step())
        while (await batches.get(batch_id))["request_counts"]["completed"] < 10:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        crashed.cancel()  # dies mid-line, without releasing its claim
        with pytest.raises(asyncio.CancelledError):
            await crashed
        services_worker = BatchWorker(
            batches.db,
            batches.worker.files,
            batches.worker.chat,
            batches.worker.billing,
            batches.worker.settings,
        )
        await asyncio.sleep(0.6)  # the claim lapses
        while await services_worker.step():
            pass
        batch = await batches.get(batch_id)
        assert batch["status"] == "completed"
        assert batch["request_counts"] == {"total": 60, "completed": 60, "failed": 0}
        output = await batches.lines_of(batch["output_file_id"])
        assert sorted(line["custom_id"] for line in output) == sorted(f"r{n}" for n in range(60))
        # The line cut by the crash was released uncharged and ran again: one
        # charge per line, each with its kept result.
        records = [
            r
            for r in await usage_rows(batches.db, batches.account_id)
            if r.request_id.startswith(f"batch-{batch_id}-")
        ]
        assert len(records) == 60 and all(r.status == "completed" for r in records)
        assert {r.request_id for r in records} == {
            line["response"]["request_id"] for line in output
        }


async def test_list_is_newest_first_and_per_account(batches: Batches) -> None:
    file_id = await batches.upload(jsonl([request_line("a")]))
    ids = [(await batches.create(file_id)).json()["id"] for _ in range(3)]
    page = (await batches.http.get("/v1/batches?limit=2", headers=batches.headers)).json()
    assert [b["id"] for b in page["data"]] == ids[::-1][:2] and page["has_more"]
    rest = (
        await batches.http.get(f"/v1/batches?after={page['last_id']}", headers=batches.headers)
    ).json()
    assert [b["id"] for b in rest["data"]] == [ids[0]]
    theirs = await batches.http.get("/v1/batches", headers=batches.other)
    assert theirs.json()["data"] == []
    hidden = await batches.http.get(f"/v1/batches/{ids[0]}", headers=batches.other)
    assert hidden.status_code == 404
