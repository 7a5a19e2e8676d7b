"""Admission (balance, rate limits) before any per-request work, on both stores.

A caller that will be refused costs the server a parse of its body and nothing
more: no template rendered, no prompt tokenized, no image decoded. The
tokenizer endpoint is admitted as chat is.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from moonbase.settings import Settings
from moonbase.store.database import Database
from tests.billing.accounts import funded_account
from tests.billing.gateway import live_gateway
from tests.billing.test_quota_and_limits import BODY, assert_429, client_for
from tests.fakes import ScriptedEngine

MANY = [{"role": "user", "content": "word"}] * 15_000
# A 9999 x 9999 PNG would take gigabytes to decode; refused, it is never opened.
PNG = "data:image/png;base64," + "iVBORw0KGgo" + "A" * 4000


async def test_an_unfunded_flood_is_refused_before_templating(database: Database, tmp_path: Path):
    _, key = await funded_account(database, "penniless")
    engine = ScriptedEngine()
    async with live_gateway(database, Settings(data_dir=tmp_path), engine) as url:
        async with await client_for(url, key) as client:
            image = [{"type": "image_url", "image_url": {"url": PNG}}]
            bodies = [
                BODY | {"messages": MANY},
                BODY | {"messages": [{"role": "user", "content": image}] * 40},
            ]
            for body in bodies:
                response = await client.post("/v1/chat/completions", json=body)
                assert_429(response, "exceeded_current_quota_error", "suspended")
            count = await client.post(
                "/v1/tokenizers/estimate-token-count",
                json={"model": BODY["model"], "messages": MANY},
            )
            assert_429(count, "exceeded_current_quota_error", "suspended")
    assert engine.rendered == []  # nothing was templated for it


async def test_a_caller_past_its_rpm_is_refused_before_templating(
    database: Database, tmp_path: Path
):
    _, key = await funded_account(database, "tier-zero", cash="10", rpm=3)
    engine = ScriptedEngine()
    async with live_gateway(database, Settings(data_dir=tmp_path), engine) as url:
        async with await client_for(url, key) as client:
            for _ in range(3):
                assert (await client.post("/v1/chat/completions", json=BODY)).status_code == 200
            rendered = len(engine.rendered)
            big = await client.post("/v1/chat/completions", json=BODY | {"messages": MANY})
            assert_429(big, "rate_limit_reached_error", "max RPM: 3")
    assert len(engine.rendered) == rendered


async def test_the_tokenizer_is_rate_limited_like_chat(database: Database, tmp_path: Path):
    _, key = await funded_account(database, "counter", cash="10", rpm=2)
    async with live_gateway(database, Settings(data_dir=tmp_path), ScriptedEngine()) as url:
        async with await client_for(url, key) as client:
            body = {"model": BODY["model"], "messages": BODY["messages"]}
            counts = [
                await client.post("/v1/tokenizers/estimate-token-count", json=body)
                for _ in range(3)
            ]
    assert [r.status_code for r in counts[:2]] == [200, 200]
    assert_429(counts[2], "rate_limit_reached_error", "max RPM: 2")


async def test_a_paying_callers_chat_is_not_held_up_by_a_flood(database: Database, tmp_path: Path):
    _, flooder = await funded_account(database, "flooder")
    _, payer = await funded_account(database, "payer", cash="10")
    engine = ScriptedEngine()
    async with live_gateway(database, Settings(data_dir=tmp_path), engine) as url:
        async with (
            await client_for(url, flooder) as flood,
            await client_for(url, payer) as paying,
        ):
            floods = [
                flood.post("/v1/chat/completions", json=BODY | {"messages": MANY}) for _ in range(3)
            ]
            results = await asyncio.gather(*floods, paying.post("/v1/chat/completions", json=BODY))
    assert [r.status_code for r in results[:3]] == [429, 429, 429]
    assert results[3].status_code == 200
    assert len(engine.rendered) == 1  # only the paying caller's prompt was rendered


async def test_a_refusal_after_admission_gives_its_place_back(database: Database, tmp_path: Path):
    _, key = await funded_account(database, "careless", cash="10", concurrency=1)
    async with live_gateway(database, Settings(data_dir=tmp_path), ScriptedEngine()) as url:
        async with await client_for(url, key) as client:
            for _ in range(3):  # admitted, then refused by the model's rules
                partial = {"role": "assistant", "content": "{", "partial": True}
                bad = await client.post(
                    "/v1/chat/completions",
                    json=BODY
                    | {
                        "messages": [*BODY["messages"], partial],
                        "response_format": {"type": "json_object"},
                    },
                )
                assert bad.status_code == 400
            assert (await client.post("/v1/chat/completions", json=BODY)).status_code == 200
            balance = await client.get("/v1/users/me/balance")
    assert isinstance(balance, httpx.Response) and balance.status_code == 200
