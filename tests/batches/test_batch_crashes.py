"""kill -9 in the middle of a batch: after a restart every line has exactly one result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from moonbase.store.database import Database
from moonbase.store.tables import Batch, UsageRecord
from tests.batches.harness import jsonl, request_line
from tests.billing.accounts import funded_account
from tests.conftest import create_pg_database, drop_pg_database
from tests.e2e.server import free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
LINES = 500


def start(data_dir: Path, url: str, *flags: str, port: int = 0) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.batches.fake_server", "--data-dir", str(data_dir),
         "--database-url", url, "--port", str(port), *flags],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=(data_dir / f"process-{time.monotonic_ns()}.log").open("wb"),
    )  # fmt: skip


def kill9(process: subprocess.Popen[bytes]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def submit(base: str, key: str) -> str:
    headers = {"Authorization": f"Bearer {key}"}
    data = jsonl([request_line(f"r{n}", f"line {n}") for n in range(LINES)])
    uploaded = httpx.post(
        f"{base}/v1/files",
        headers=headers,
        files={"file": ("in.jsonl", data)},
        data={"purpose": "batch"},
    ).json()
    batch = httpx.post(
        f"{base}/v1/batches",
        headers=headers,
        json={
            "input_file_id": uploaded["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
    ).json()
    return str(batch["id"])


def progress(base: str, key: str, batch_id: str) -> dict:
    response = httpx.get(
        f"{base}/v1/batches/{batch_id}", headers={"Authorization": f"Bearer {key}"}, timeout=5
    )
    return dict(response.json())


def wait_until(base: str, key: str, batch_id: str, done: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        batch = progress(base, key, batch_id)
        if batch["status"] == "completed" or batch["request_counts"]["completed"] >= done:
            return batch
        assert time.monotonic() < deadline, batch
        time.sleep(0.1)


def output_custom_ids(base: str, key: str, batch_id: str) -> list[str]:
    batch = wait_until(base, key, batch_id, LINES + 1)
    assert batch["status"] == "completed", batch
    assert batch["request_counts"] == {"total": LINES, "completed": LINES, "failed": 0}
    content = httpx.get(
        f"{base}/v1/files/{batch['output_file_id']}/content",
        headers={"Authorization": f"Bearer {key}"},
    ).text
    return [json.loads(line)["custom_id"] for line in content.splitlines()]


async def check_exactly_once(base: str, key: str, batch_id: str, url: str) -> None:
    custom_ids = output_custom_ids(base, key, batch_id)
    assert sorted(custom_ids) == sorted(f"r{n}" for n in range(LINES))
    db = Database(url)
    try:
        async with db.read() as session:
            charged = list(
                await session.scalars(
                    select(UsageRecord.request_id).where(
                        UsageRecord.request_id.like(f"batch-{batch_id}-%")
                    )
                )
            )
    finally:
        await db.dispose()
    assert len(charged) == LINES  # one charge per line, none for work a crash cut short


async def claim_holder(url: str, batch_id: str) -> str:
    db = Database(url)
    try:
        async with db.read() as session:
            batch = await session.get(Batch, batch_id)
            assert batch is not None and batch.claimed_by is not None
            return batch.claimed_by
    finally:
        await db.dispose()


async def funded_key(url: str) -> str:
    """A migrated database at ``url`` with one account that can pay; its API key."""
    db = Database(url)
    try:
        await db.migrate()
        _, key = await funded_account(db, "crash", voucher="1000")
    finally:
        await db.dispose()
    return key


async def test_kill_9_of_the_server_mid_batch_then_restart(tmp_path: Path) -> None:
    data_dir = tmp_path
    url = f"sqlite+aiosqlite:///{data_dir / 'moonbase.db'}"
    key = await funded_key(url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start(data_dir, url, port=port)
    try:
        assert wait_healthy(base, server)
        batch_id = submit(base, key)
        at_kill = wait_until(base, key, batch_id, LINES // 4)
        kill9(server)
        assert at_kill["status"] == "in_progress", at_kill  # killed mid-batch
        server = start(data_dir, url, port=port)
        assert wait_healthy(base, server)
        await check_exactly_once(base, key, batch_id, url)
    finally:
        server.kill()
        server.wait()


@pytest.mark.postgres
async def test_two_workers_on_postgresql_one_killed(tmp_path: Path) -> None:
    data_dir = tmp_path
    url = await create_pg_database()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        key = await funded_key(url)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        processes.append(start(data_dir, url, "--no-worker", port=port))
        assert wait_healthy(base, processes[0])
        batch_id = submit(base, key)
        workers = [start(data_dir, url, "--worker-only") for _ in range(2)]
        processes += workers
        at_kill = wait_until(base, key, batch_id, LINES // 4)
        holder = await claim_holder(url, batch_id)
        (victim,) = [
            w for w in workers if (data_dir / f"worker-{w.pid}.name").read_text() == holder
        ]
        kill9(victim)  # the worker that holds the batch, mid-batch
        assert at_kill["status"] == "in_progress", at_kill
        await check_exactly_once(base, key, batch_id, url)
    finally:
        for process in processes:
            process.kill()
            process.wait()
        await drop_pg_database(url)
