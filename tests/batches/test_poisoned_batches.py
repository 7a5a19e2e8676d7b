"""One account's poisoned batch fails alone; other accounts' batches go on."""

from __future__ import annotations

import json
from pathlib import Path

from moonbase.store.database import Database
from tests.batches.harness import batches_app, jsonl, request_line


async def test_a_line_that_breaks_the_checker_fails_its_batch_not_the_worker(
    database: Database, tmp_path: Path
) -> None:
    async with batches_app(database, tmp_path) as batches:
        deep = '{"custom_id": "deep", "method": "POST", "url": "/v1/chat/completions", "body": '
        deep += "[" * 100_000 + "]" * 100_000 + "}"
        nested_body = json.dumps(request_line("nested"))[:-1]  # a body nested past the parser
        nested_body = (
            nested_body.replace(
                '"messages"',
                '"tools": [{"type": "function", "function": {"name": "f", '
                '"parameters": ' + '{"a": ' * 600 + "1" + "}" * 600 + "}}], " + '"messages"',
            )
            + "}"
        )
        poisoned = await batches.submit([deep, nested_body])
        upload = await batches.upload(jsonl([request_line("fine")]), who=batches.other)
        other = await batches.create(upload, who=batches.other)
        assert other.status_code == 200
        await batches.drain()
        batch = await batches.get(poisoned)
        assert batch["status"] == "failed"
        errors = {e["line"]: e for e in batch["errors"]["data"]}
        assert errors[1]["code"] == "invalid_json" and "line 1" in errors[1]["message"]
        assert errors[2]["code"] == "invalid_body"
        theirs = await batches.http.get(f"/v1/batches/{other.json()['id']}", headers=batches.other)
        assert theirs.json()["status"] == "completed"


async def test_over_long_custom_ids_and_lines_are_refused_per_line(
    database: Database, tmp_path: Path
) -> None:
    async with batches_app(database, tmp_path) as batches:
        huge = request_line("huge", content="x" * (17 * 1024 * 1024))
        long_id = request_line("i" * 600)
        batch_id = await batches.submit([request_line("ok"), long_id, huge])
        await batches.drain()
        batch = await batches.get(batch_id)
        assert batch["status"] == "failed"
        codes = {e["line"]: e["code"] for e in batch["errors"]["data"]}
        assert codes == {2: "invalid_custom_id", 3: "line_too_large"}
