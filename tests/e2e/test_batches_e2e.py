"""A 200-line batch against the real embedded model, through the openai SDK."""

from __future__ import annotations

import io
import json
import time
from decimal import Decimal

import openai

from tests.e2e.server import RunningServer
from tests.e2e.test_files_e2e import new_client

LINES = 200
MODEL = "moonshot-v1-8k"


def balance(client: openai.OpenAI) -> Decimal:
    body = client.get("/users/me/balance", cast_to=object)
    return Decimal(str(body["data"]["available_balance"]))  # type: ignore[index]


def test_200_line_batch_completes_once_per_line_at_the_batch_price(
    server: RunningServer, client: openai.OpenAI
) -> None:
    requests = [
        {
            "custom_id": f"line-{n}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": MODEL,
                "messages": [{"role": "user", "content": f"Say the number {n}."}],
                "max_completion_tokens": 4,
                "temperature": 0,
            },
        }
        for n in range(LINES)
    ]
    data = "".join(json.dumps(r) + "\n" for r in requests).encode()
    uploaded = client.files.create(file=("requests.jsonl", io.BytesIO(data)), purpose="batch")
    before = balance(client)
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "validating"
    deadline = time.monotonic() + 300
    while batch.status not in ("completed", "failed", "expired", "cancelled"):
        assert time.monotonic() < deadline, batch
        time.sleep(0.5)
        batch = client.batches.retrieve(batch.id)
    assert batch.status == "completed", batch.errors
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed) == (LINES, LINES)
    assert batch.output_file_id is not None
    output = [
        json.loads(line) for line in client.files.content(batch.output_file_id).text.splitlines()
    ]
    errors = []
    if batch.error_file_id:
        errors = client.files.content(batch.error_file_id).text.splitlines()
    custom_ids = [line["custom_id"] for line in output] + [
        json.loads(e)["custom_id"] for e in errors
    ]
    assert sorted(custom_ids) == sorted(f"line-{n}" for n in range(LINES))
    paid = before - balance(client)
    # The same request online costs twice as much per token (batch_discount 0.5).
    online = client.chat.completions.create(**requests[0]["body"])  # type: ignore[arg-type]
    assert online.usage is not None
    batch_usage = output[0]["response"]["body"]["usage"]
    assert paid > 0
    per_token_online = (before - paid - balance(client)) / online.usage.total_tokens
    assert per_token_online > 0
    assert batch_usage["total_tokens"] > 0
    # Whole-batch check: what was paid equals half the list price of its tokens.
    spent = sum(line["response"]["body"]["usage"]["total_tokens"] for line in output)
    assert abs(paid / spent - per_token_online / 2) <= per_token_online * Decimal("0.05")
    other = new_client(server, "e2e-batches-other")
    assert batch.id not in {b.id for b in other.batches.list()}
