"""Two gateway processes on one PostgreSQL (and one Redis, one blob folder).

Both serve the same account in front of one upstream (bench/stub_upstream.py);
each runs its own batch worker. A mixed load through both must leave the
ledger, the balance and the usage records agreeing to the fen, with one
record per request; a batch submitted through one is processed exactly once
between the two workers; a rate limit holds across both (counted in Redis).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import openai
import pytest

from tests.conftest import create_pg_database, drop_pg_database
from tests.e2e.server import RunningServer, free_port, openai_client, start_server

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]
ASK = [{"role": "user", "content": "What is the capital of France?"}]


def cli(env: dict[str, str], *args: str) -> str:
    command = [sys.executable, "-m", "moonbase", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[list[RunningServer], str, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("scale-out")
    url = asyncio.run(create_pg_database())
    stub_port = free_port()
    stub = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "stub_upstream.py"), "--port", str(stub_port)]
    )
    config = folder / "moonbase.toml"
    config.write_text(
        'default_engine = "stub"\n'
        "[engines.stub]\n"
        'kind = "upstream"\n'
        f'urls = ["http://127.0.0.1:{stub_port}/v1"]\n'
        "[batches]\n"
        "poll_interval_s = 0.2\n"
    )
    env = {
        **os.environ,
        "MOONBASE_CONFIG": str(config),
        "MOONBASE_DATABASE_URL": url,
        "MOONBASE_REDIS_URL": "redis://127.0.0.1:6379/0",
        "MOONBASE_FILES__BLOB_DIR": str(folder / "blobs"),
        "MOONBASE_DATA_DIR": str(folder / "cli"),
    }
    cli(env, "accounts", "create", "team")
    cli(env, "accounts", "topup", "team", "100")
    key = cli(env, "keys", "create", "--account", "team").splitlines()[0]
    shared = {
        k: v for k, v in env.items() if k.startswith("MOONBASE_") and k != "MOONBASE_DATA_DIR"
    }
    gateways = [start_server(folder / f"gateway-{n}", shared, api_key=key) for n in range(2)]
    try:
        yield gateways, url, env
    finally:
        for gateway in gateways:
            gateway.stop()
        stub.terminate()
        stub.wait()
        asyncio.run(drop_pg_database(url))


def client_of(gateway: RunningServer) -> openai.OpenAI:
    return openai_client(f"{gateway.base_url}/v1", gateway.api_key)


def one_request(gateway: RunningServer, index: int) -> str:
    """Plain or streamed; returns the request id, or 'limited' when refused with a 429."""
    client = client_of(gateway)
    try:
        if index % 2:
            raw = client.chat.completions.with_raw_response.create(
                model="moonshot-v1-8k", messages=ASK, max_tokens=16
            )
            return raw.headers["x-request-id"]
        with client.chat.completions.with_streaming_response.create(
            model="kimi-k2-turbo-preview", messages=ASK, max_tokens=16, stream=True
        ) as response:
            for _ in response.iter_lines():
                pass
            return response.headers["x-request-id"]
    except openai.RateLimitError:
        return "limited"


async def books(url: str) -> dict[str, object]:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        account = await conn.fetchrow("SELECT * FROM accounts WHERE name = 'team'")
        ledger = await conn.fetchrow(
            "SELECT sum(cash_micro) AS cash, sum(voucher_micro) AS voucher, "
            "sum(CASE WHEN kind = 'charge' THEN -(cash_micro + voucher_micro) END) AS charged "
            "FROM ledger_entries WHERE account_id = $1",
            account["id"],
        )
        usage = await conn.fetch(
            "SELECT request_id, cost_micro FROM usage_records WHERE account_id = $1",
            account["id"],
        )
        lines = await conn.fetch("SELECT status FROM batch_lines")
        return {"account": account, "ledger": ledger, "usage": usage, "lines": lines}
    finally:
        await conn.close()


def settled_books(url: str, requests: int) -> dict[str, object]:
    """The books once every charge has committed (they commit just after replies)."""
    deadline = time.monotonic() + 120
    while True:
        state = asyncio.run(books(url))
        if len(state["usage"]) >= requests or time.monotonic() > deadline:  # type: ignore[arg-type]
            return state
        time.sleep(0.1)


def test_a_mixed_load_through_both_gateways_keeps_the_books(cluster):
    gateways, url, _ = cluster
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        ids = list(pool.map(lambda i: one_request(gateways[i % 2], i), range(240)))
    served = [request_id for request_id in ids if request_id != "limited"]
    assert len(served) > 200
    state = settled_books(url, len(served))
    usage = state["usage"]
    assert sorted(row["request_id"] for row in usage) == sorted(served)  # once each
    account, ledger = state["account"], state["ledger"]
    assert ledger["cash"] == account["cash_micro"]  # the balance is its ledger
    assert ledger["voucher"] == account["voucher_micro"]
    assert ledger["charged"] == sum(row["cost_micro"] for row in usage)
    assert ledger["charged"] > 0


def test_a_rate_limit_holds_across_both_gateways(cluster):
    gateways, _, env = cluster
    cli(env, "accounts", "create", "metered")
    cli(env, "accounts", "topup", "metered", "10")
    cli(env, "accounts", "limits", "metered", "--rpm", "6")
    key = cli(env, "keys", "create", "--account", "metered").splitlines()[0]
    body = {"model": "moonshot-v1-8k", "messages": ASK, "max_tokens": 4}
    headers = {"authorization": f"Bearer {key}"}
    responses = [
        httpx.post(f"{gateways[n % 2].base_url}/v1/chat/completions", json=body, headers=headers)
        for n in range(8)
    ]
    # Six in the minute between the two of them, not six each.
    assert [r.status_code for r in responses] == [200] * 6 + [429, 429]
    refused = responses[-1]
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_reached_error" and "RPM: 6" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60


def test_a_batch_is_processed_once_by_two_workers(cluster):
    gateways, url, _ = cluster
    lines = "\n".join(
        json.dumps(
            {
                "custom_id": f"line-{n}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "moonshot-v1-8k", "messages": ASK, "max_tokens": 8},
            }
        )
        for n in range(60)
    )
    client = client_of(gateways[0])
    uploaded = client.files.create(file=("batch.jsonl", lines.encode()), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    deadline = time.monotonic() + 120
    while batch.status not in ("completed", "failed", "expired") and time.monotonic() < deadline:
        time.sleep(0.3)
        batch = client_of(gateways[1]).batches.retrieve(batch.id)  # either gateway answers
    assert batch.status == "completed", batch
    assert batch.request_counts.completed == 60 and batch.request_counts.failed == 0
    output = client.files.content(batch.output_file_id).text.splitlines()
    assert sorted(json.loads(line)["custom_id"] for line in output) == sorted(
        f"line-{n}" for n in range(60)
    )
    state = asyncio.run(books(url))
    batch_ids = {json.loads(line)["response"]["request_id"] for line in output}
    charged = [row["request_id"] for row in state["usage"] if row["request_id"] in batch_ids]
    assert sorted(charged) == sorted(batch_ids) and len(batch_ids) == 60  # each line once
    assert [row["status"] for row in state["lines"]].count("done") == 60
