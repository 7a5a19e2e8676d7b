"""Money and usage agree to the fen under concurrency, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from moonbase.settings import Settings
from moonbase.store.database import Database
from tests.billing.accounts import books, funded_account
from tests.billing.gateway import live_gateway
from tests.fakes import ScriptedEngine

MODELS = ["moonshot-v1-8k", "kimi-k2-turbo-preview", "kimi-k2.6", "moonshot-v1-auto"]


async def one_request(client: httpx.AsyncClient, i: int) -> tuple[str, str]:
    """Plain, streamed, abandoned mid-stream, or n=2; returns (request id, kind)."""
    body = {
        "model": MODELS[i % len(MODELS)],
        "max_tokens": 60,
        "messages": [{"role": "user", "content": f"request {i} " + "x" * (i % 37)}],
    }
    kind = ["plain", "stream", "abandoned", "choices"][i % 4]
    if kind == "plain":
        response = await client.post("/v1/chat/completions", json=body)
        assert response.status_code == 200, response.text
        return response.headers["x-request-id"], kind
    if kind == "choices" and body["model"] not in ("kimi-k2.6",):
        body |= {"n": 2, "temperature": 0.7}
    body |= {"stream": True, "stream_options": {"include_usage": True}}
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        seen = 0
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                seen += 1
                json.loads(line[6:])
                if kind == "abandoned" and seen == 4:
                    break  # leave mid-stream: the gateway must charge what was generated
    return request_id, kind


async def test_200_concurrent_requests_agree_to_the_fen(database: Database, tmp_path: Path):
    account_id, key = await funded_account(database, "payer", cash="5", voucher="0.002")
    engine = ScriptedEngine(reply="moon " * 30, delay=0.001)
    async with live_gateway(database, Settings(data_dir=tmp_path), engine) as url:
        headers = {"Authorization": f"Bearer {key}"}
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(
            base_url=url, headers=headers, timeout=120, limits=limits
        ) as client:
            done = await asyncio.gather(*(one_request(client, i) for i in range(200)))
            await asyncio.sleep(0.5)  # abandoned streams settle after the client left
    account, entries, records, from_ledger = await books(database, account_id)

    request_ids = {request_id for request_id, _ in done}
    assert len(request_ids) == 200
    assert {r.request_id for r in records} == request_ids  # exactly one record each
    assert len(records) == 200
    interrupted = [r for r in records if r.status == "interrupted"]
    assert interrupted and all(0 < r.completion_tokens < 30 for r in interrupted)
    assert all(r.cost_micro > 0 for r in records)

    charges = [e for e in entries if e.kind == "charge"]
    assert {e.reference for e in charges} == request_ids
    assert sum(r.cost_micro for r in records) == -sum(
        e.cash_micro + e.voucher_micro for e in charges
    )
    # balances are exactly what the ledger says, and the voucher was spent first
    assert (account.cash_micro, account.voucher_micro) == (
        from_ledger.cash_micro,
        from_ledger.voucher_micro,
    )
    assert account.voucher_micro == 0
    assert account.cash_micro == 5_000_000 + 2_000 - sum(r.cost_micro for r in records)
