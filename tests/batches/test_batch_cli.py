"""`moonbase batch submit --wait` against a live gateway (scripted engine, worker running)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from moonbase.cli import app
from moonbase.settings import BatchSettings, Settings
from moonbase.store.database import Database
from tests.batches.harness import jsonl, request_line
from tests.billing.accounts import funded_account
from tests.billing.gateway import live_gateway
from tests.fakes import ScriptedEngine


async def test_submit_waits_and_downloads_the_results(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, batches=BatchSettings(poll_interval_s=0.05))
    db = Database(settings.resolved_database_url)
    await db.migrate()
    _, key = await funded_account(db, "cli", voucher="10")
    requests = tmp_path / "requests.jsonl"
    requests.write_bytes(jsonl([request_line(f"r{n}") for n in range(5)]))
    async with live_gateway(db, settings, ScriptedEngine(reply="ok")) as base:
        result = await asyncio.to_thread(
            CliRunner().invoke,
            app,
            ["batch", "submit", str(requests), "--wait", "--base-url", f"{base}/v1",
             "--api-key", key, "--output-dir", str(tmp_path)],
        )  # fmt: skip
    await db.dispose()
    assert result.exit_code == 0, result.output
    assert "completed, 5 completed, 0 failed" in result.output
    assert sorted(custom_ids(tmp_path)) == [f"r{n}" for n in range(5)]


def custom_ids(folder: Path) -> list[str]:
    (output,) = folder.glob("batch-*_output.jsonl")
    return [json.loads(line)["custom_id"] for line in output.read_text().splitlines()]


def test_submit_without_a_key_says_what_to_do(tmp_path: Path) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_bytes(b"{}\n")
    result = CliRunner(env={"MOONSHOT_API_KEY": ""}).invoke(app, ["batch", "submit", str(requests)])
    assert result.exit_code == 2
    assert "MOONSHOT_API_KEY" in result.output
