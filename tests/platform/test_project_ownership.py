"""Files and batches belong to the project of the key that made them, on SQLite
and PostgreSQL: another project of the same organisation gets the same 404
as another organisation, for every route (files: list, get, content, delete;
batches: create from its file, list, get, cancel), and a batch's results are
its project's too."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from moonbase import admin
from moonbase.store.database import Database
from moonbase.store.repositories.projects import default_project_id
from moonbase.store.tables import Batch, StoredFile, UsageRecord
from tests.batches.harness import Batches, batches_app, jsonl, request_line


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
async def batches(database: Database, tmp_path: Path) -> AsyncIterator[Batches]:
    async with batches_app(database, tmp_path) as made:
        yield made


async def research_key(batches: Batches) -> tuple[dict[str, str], str]:
    """A key of a second project, ``research``, of the same organisation."""
    project = await admin.create_project(batches.db, "batcher", "research")
    issued = await admin.create_key(batches.db, "batcher", project="research")
    return bearer(issued.secret), project.id


def assert_404(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    assert response.json()["error"]["type"] == "resource_not_found_error"


async def test_files_are_seen_only_by_their_project(batches: Batches):
    research, research_id = await research_key(batches)
    default_file = await batches.upload(jsonl([request_line("a")]))
    research_file = await batches.upload(jsonl([request_line("b")]), who=research)

    for who, mine, theirs in ((batches.headers, default_file, research_file),
                              (research, research_file, default_file)):  # fmt: skip
        listed = (await batches.http.get("/v1/files", headers=who)).json()
        assert [f["id"] for f in listed["data"]] == [mine]
        assert (await batches.http.get(f"/v1/files/{mine}", headers=who)).status_code == 200
        for path in (f"/v1/files/{theirs}", f"/v1/files/{theirs}/content"):
            assert_404(await batches.http.get(path, headers=who))
        assert_404(await batches.http.delete(f"/v1/files/{theirs}", headers=who))
        # the same answer as another organisation's file
        assert_404(await batches.http.get(f"/v1/files/{mine}", headers=batches.other))

    async with batches.db.read() as session:
        rows = {f.id: f for f in await session.scalars(select(StoredFile))}
    assert rows[default_file].project_id == default_project_id(batches.account_id)
    assert rows[research_file].project_id == research_id  # both still there
    deleted = await batches.http.delete(f"/v1/files/{research_file}", headers=research)
    assert deleted.status_code == 200


async def test_batches_are_seen_only_by_their_project_and_so_are_their_results(
    batches: Batches,
):
    research, research_id = await research_key(batches)
    default_file = await batches.upload(jsonl([request_line("a")]))
    # A batch's input file must be in the caller's project.
    assert_404(await batches.create(default_file, who=research))
    research_file = await batches.upload(jsonl([request_line(f"r{n}") for n in range(3)]),
                                         who=research)  # fmt: skip
    created = await batches.create(research_file, who=research)
    assert created.status_code == 200, created.text
    batch_id = created.json()["id"]
    other_id = await batches.submit([request_line("d")])  # the default project's

    for who, mine, theirs in ((research, batch_id, other_id),
                              (batches.headers, other_id, batch_id)):  # fmt: skip
        listed = (await batches.http.get("/v1/batches", headers=who)).json()
        assert [b["id"] for b in listed["data"]] == [mine]
        assert_404(await batches.http.get(f"/v1/batches/{theirs}", headers=who))
        assert_404(await batches.http.post(f"/v1/batches/{theirs}/cancel", headers=who))
        assert_404(await batches.http.get(f"/v1/batches/{mine}", headers=batches.other))

    await batches.drain()
    done = (await batches.http.get(f"/v1/batches/{batch_id}", headers=research)).json()
    assert done["status"] == "completed" and done["request_counts"]["completed"] == 3
    output = done["output_file_id"]
    content = await batches.http.get(f"/v1/files/{output}/content", headers=research)
    assert content.status_code == 200 and len(content.text.splitlines()) == 3
    assert_404(await batches.http.get(f"/v1/files/{output}", headers=batches.headers))
    outputs = await batches.http.get("/v1/files?purpose=batch_output", headers=batches.headers)
    assert output not in [f["id"] for f in outputs.json()["data"]]

    async with batches.db.read() as session:
        batch = await session.get(Batch, batch_id)
        stored = await session.get(StoredFile, output)
        charged = list(await session.scalars(
            select(UsageRecord.project_id).where(UsageRecord.request_id.like(f"batch-{batch_id}%"))
        ))  # fmt: skip
    assert batch is not None and batch.project_id == research_id
    assert stored is not None and stored.project_id == research_id
    assert charged == [research_id] * 3  # and its lines are charged to the project


async def test_a_cancel_from_the_right_project_works(batches: Batches):
    research, _ = await research_key(batches)
    research_file = await batches.upload(jsonl([request_line("x")]), who=research)
    batch_id = (await batches.create(research_file, who=research)).json()["id"]
    cancelled = await batches.http.post(f"/v1/batches/{batch_id}/cancel", headers=research)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelling"


async def test_rows_without_a_project_belong_to_the_default_project(batches: Batches):
    """None is left after migration 0010; a gateway of the previous release may
    still write one during a rolling upgrade: it is the default project's, as
    the migration would have made it."""
    research, _ = await research_key(batches)
    file_id = await batches.upload(jsonl([request_line("a")]))
    batch_id = (await batches.create(file_id)).json()["id"]
    async with batches.db.transaction() as session:
        await session.execute(update(StoredFile).values(project_id=None))
        await session.execute(update(Batch).values(project_id=None))
    assert (await batches.http.get(f"/v1/files/{file_id}", headers=batches.headers)).is_success
    assert (await batches.http.get(f"/v1/batches/{batch_id}", headers=batches.headers)).is_success
    assert_404(await batches.http.get(f"/v1/files/{file_id}", headers=research))
    assert_404(await batches.http.get(f"/v1/batches/{batch_id}", headers=research))
    await batches.drain()  # the worker runs it in the default project
    done = await batches.get(batch_id)
    assert done["status"] == "completed"
    output = await batches.http.get(f"/v1/files/{done['output_file_id']}", headers=batches.headers)
    assert output.status_code == 200


async def test_batch_lines_keep_to_their_projects_allowlist(batches: Batches):
    research, research_id = await research_key(batches)
    await admin.set_project_models(batches.db, research_id, ["kimi-k2-turbo-preview"])
    research_file = await batches.upload(jsonl([request_line("a"), request_line("b")]),
                                         who=research)  # fmt: skip
    batch_id = (await batches.create(research_file, who=research)).json()["id"]
    await batches.drain()
    done = (await batches.http.get(f"/v1/batches/{batch_id}", headers=research)).json()
    assert done["request_counts"] == {"total": 2, "completed": 0, "failed": 2}
    errors = await batches.http.get(f"/v1/files/{done['error_file_id']}/content", headers=research)
    for line in errors.text.splitlines():
        response = json.loads(line)["response"]
        assert response["status_code"] == 403
        assert response["body"]["error"]["code"] == "model_not_allowed"
        assert "project research" in response["body"]["error"]["message"]
