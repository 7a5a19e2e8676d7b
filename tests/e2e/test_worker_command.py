"""`moonbase worker` runs the batch worker on its own and finishes batches."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.server import openai_client, start_server


def test_worker_process_finishes_a_batch_for_a_gateway_without_one(tmp_path: Path) -> None:
    gateway = start_server(tmp_path, extra_env={"MOONBASE_BATCHES__RUN_WORKER": "false"})
    worker = subprocess.Popen(
        [sys.executable, "-m", "moonbase", "worker", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        client = openai_client(f"{gateway.base_url}/v1", gateway.api_key)
        line = {
            "custom_id": "only",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "moonshot-v1-8k",
                "messages": [{"role": "user", "content": "Hi"}],
                "max_completion_tokens": 4,
            },
        }
        uploaded = client.files.create(
            file=("in.jsonl", (json.dumps(line) + "\n").encode()), purpose="batch"
        )
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        deadline = time.monotonic() + 120
        while batch.status != "completed":
            assert time.monotonic() < deadline, batch
            assert worker.poll() is None, worker.stdout.read() if worker.stdout else ""
            time.sleep(0.3)
            batch = client.batches.retrieve(batch.id)
        assert batch.request_counts is not None and batch.request_counts.completed == 1
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        gateway.stop()
