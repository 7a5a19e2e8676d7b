"""Refusals: an empty balance (quota) and each rate limit, with retry-after."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import httpx
import pytest

from moonbase.billing.pricing import DEFAULT_PRICES, TokenUsage, cost_micro
from moonbase.settings import BillingSettings, Settings
from moonbase.store.database import Database
from tests.billing.accounts import books, funded_account
from tests.billing.gateway import live_gateway
from tests.fakes import ScriptedEngine

BODY = {
    "model": "kimi-k2-turbo-preview",
    "max_tokens": 40,
    "messages": [{"role": "user", "content": "hello"}],
}


def assert_429(response: httpx.Response, error_type: str, words: str) -> int:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["type"] == error_type
    assert words in error["message"]
    retry_after = (
        int(response.headers["retry-after"])
        if error_type != ("exceeded_current_quota_error")
        else 0
    )
    return retry_after


async def client_for(url: str, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


async def test_a_spent_balance_is_refused_and_arrears_stay_bounded(
    database: Database, tmp_path: Path
):
    concurrency = 4
    account_id, key = await funded_account(
        database, "thrifty", cash="0.01", concurrency=concurrency
    )
    engine = ScriptedEngine(reply="token " * 40, delay=0.002)
    async with live_gateway(database, Settings(data_dir=tmp_path), engine) as url:
        async with await client_for(url, key) as client:
            refused = None
            for _ in range(200):  # ¥0.01 buys a handful of these
                wave = await asyncio.gather(
                    *(client.post("/v1/chat/completions", json=BODY) for _ in range(concurrency))
                )
                refusals = [r for r in wave if r.status_code == 429]
                if refusals:
                    refused = refusals[0]
                    break
            assert refused is not None
            assert_429(refused, "exceeded_current_quota_error", "suspended")
            again = await client.post("/v1/chat/completions", json=BODY)
            assert_429(again, "exceeded_current_quota_error", "suspended")
            balance = (await client.get("/v1/users/me/balance")).json()["data"]
    account, _, records, _ = await books(database, account_id)
    assert balance["available_balance"] <= 0
    # Admission holds each request's most possible cost (its exact prompt, all
    # of its max_tokens) until it settles: however many run at once, the
    # account ends at most one request's most possible cost in arrears.
    prompt = max(r.prompt_tokens for r in records)
    most = cost_micro(DEFAULT_PRICES[BODY["model"]], TokenUsage(prompt, 0, BODY["max_tokens"]))
    assert -account.cash_micro <= most
    assert balance["cash_balance"] == account.cash_micro / 1e6


async def test_charging_off_still_records_usage(database: Database, tmp_path: Path):
    account_id, key = await funded_account(database, "owner-only")  # no money at all
    settings = Settings(data_dir=tmp_path, billing=BillingSettings(charging=False))
    async with live_gateway(database, settings, ScriptedEngine()) as url:
        async with await client_for(url, key) as client:
            assert (await client.post("/v1/chat/completions", json=BODY)).status_code == 200
            balance = (await client.get("/v1/users/me/balance")).json()
    _account, entries, records, _ = await books(database, account_id)
    assert len(records) == 1 and records[0].cost_micro > 0
    assert not [e for e in entries if e.kind == "charge"]
    assert balance == {
        "code": 0,
        "data": {"available_balance": 0.0, "voucher_balance": 0.0, "cash_balance": 0.0},
        "scode": "0x0",
        "status": True,
    }


async def test_concurrency_limit(database: Database, tmp_path: Path):
    _, key = await funded_account(database, "one-at-a-time", cash="10", concurrency=1)
    engine = ScriptedEngine(reply="slow " * 100, delay=0.01)
    async with live_gateway(database, Settings(data_dir=tmp_path), engine) as url:
        async with await client_for(url, key) as client:
            body = BODY | {"stream": True, "max_tokens": 200}
            async with client.stream("POST", "/v1/chat/completions", json=body) as first:
                assert first.status_code == 200
                second = await client.post("/v1/chat/completions", json=BODY)
                assert assert_429(second, "rate_limit_reached_error", "max concurrency: 1") >= 1
            # the stream's end releases its place (once the server has seen it go)
            for _ in range(300):
                third = await client.post("/v1/chat/completions", json=BODY)
                if third.status_code != 429:
                    break
                await asyncio.sleep(0.1)
            assert third.status_code == 200, third.text


@pytest.mark.parametrize(
    ("limits", "words"),
    [
        ({"rpm": 3}, "max RPM: 3"),
        ({"tpm": 200}, "max TPM: 200"),
        ({"tpd": 200, "tier": 1}, "max TPD: 200"),
    ],
)
async def test_rate_limits_per_minute_and_day(
    database: Database, tmp_path: Path, limits: dict[str, int], words: str
):
    tier = limits.pop("tier", 5)
    _, key = await funded_account(database, "limited", cash="10", tier=tier, **limits)
    async with live_gateway(database, Settings(data_dir=tmp_path), ScriptedEngine()) as url:
        async with await client_for(url, key) as client:
            statuses = []
            for _ in range(4):  # each estimate is ~60 prompt + 40 max tokens
                response = await client.post("/v1/chat/completions", json=BODY)
                statuses.append(response.status_code)
                if response.status_code == 429:
                    retry_after = assert_429(response, "rate_limit_reached_error", words)
                    assert 1 <= retry_after <= (3600 if "TPD" in words else 60)
                    break
            assert statuses[-1] == 429 and statuses[0] == 200


def test_default_prices_cover_every_priced_model():
    from moonbase.catalog import AUTO_MODEL_ID, SPECS_BY_ID

    assert set(DEFAULT_PRICES) == set(SPECS_BY_ID) - {AUTO_MODEL_ID}
    assert all(p.input_cached <= p.input for p in DEFAULT_PRICES.values())
    assert math.isclose(float(DEFAULT_PRICES["kimi-k2-turbo-preview"].output), 58)


async def test_a_chinese_prompt_counts_a_token_per_character_at_admission(
    database: Database, tmp_path: Path
):
    """Admission sizes a prompt before any tokenizer runs. Chinese characters
    count a token each (tokenizers give them about that), not a quarter as
    English letters do: 392 of them, a message and 40 max tokens are 436
    tokens, over a 300 TPM limit with a small request already counted, where
    a quarter made them 142."""
    _, key = await funded_account(database, "chinese", cash="10", tpm=300)
    sentence = "档案馆保存船只与港口的记录。"  # 14 characters
    chinese = {**BODY, "messages": [{"role": "user", "content": sentence * 28}]}
    words = "The archive keeps records. "  # 27 characters
    english = {**BODY, "messages": [{"role": "user", "content": words * 15}]}
    engine = ScriptedEngine()
    async with live_gateway(database, Settings(data_dir=tmp_path), engine) as url:
        async with await client_for(url, key) as client:
            # The first request of a minute always passes (a prompt over the
            # limit alone must not wait forever); the limit counts after it.
            opening = await client.post("/v1/chat/completions", json=BODY)
            assert opening.status_code == 200, opening.text
            refused = await client.post("/v1/chat/completions", json=chinese)
            assert_429(refused, "rate_limit_reached_error", "max TPM: 300")
            assert len(engine.rendered) == 1  # refused before any work
            # The same number of English characters (about 100 tokens) passes.
            admitted = await client.post("/v1/chat/completions", json=english)
            assert admitted.status_code == 200, admitted.text
