"""Hostile input through every stored field, on SQLite and PostgreSQL: a clean
4xx that names the field, never a 500, and nothing stored is harmed.

The two stores differ exactly here: SQLite keeps a NUL and ignores declared
lengths, PostgreSQL refuses both (which once made one request halt billing
for every account). The hypothesis tests send generated strings (NUL, lone
surrogates, huge, any unicode) through each field a client writes that
storage keeps.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from moonbase import admin
from moonbase.app import create_app
from moonbase.billing.money import MAX_BALANCE_MICRO
from moonbase.settings import EMBEDDED_ENGINE, Settings
from moonbase.store.database import Database
from moonbase.store.tables import Account
from tests.fakes import ScriptedEngine

TOKEN = "admin-" + "h" * 32
USER = [{"role": "user", "content": "hi"}]
CHAT = {"model": "moonshot-v1-8k", "messages": USER, "max_tokens": 4}


@dataclass
class Hostile:
    http: httpx.AsyncClient
    key: dict[str, str]
    admin: dict[str, str]
    billing: object
    db: Database


@pytest.fixture
async def hostile(database: Database, tmp_path: Path) -> AsyncIterator[Hostile]:
    settings = Settings(data_dir=tmp_path, admin_token=TOKEN)
    issued = await admin.bootstrap(database, settings.billing)
    assert issued is not None
    app = create_app(settings, engines={EMBEDDED_ENGINE: ScriptedEngine()}, db=database)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://moonbase") as client:
            yield Hostile(
                client,
                {"Authorization": f"Bearer {issued.secret}"},
                {"Authorization": f"Bearer {TOKEN}"},
                app.state.services.billing,
                database,
            )


def refused(response: httpx.Response, status: int = 400, param: str | None = None) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] and error["message"]
    if param is not None:
        assert error.get("param") == param, error
    return str(error["message"])


async def usage_count(hostile: Hostile) -> int:
    await hostile.billing.flushed()  # type: ignore[attr-defined]
    response = await hostile.http.get("/admin/usage?group_by=account", headers=hostile.admin)
    assert response.status_code == 200
    return int(response.json()["total"]["requests"])


# -- 1: strings a usage record keeps ------------------------------------------------


@pytest.mark.parametrize("field", ["prompt_cache_key", "safety_identifier"])
@pytest.mark.parametrize("value", ["k" * 300, "a\x00b", "a\ud800b"])
async def test_chat_strings_the_usage_record_keeps_are_bounded(
    hostile: Hostile, field: str, value: str
):
    before = await usage_count(hostile)
    body = json.dumps({**CHAT, field: value}).encode()  # json.dumps escapes the surrogate
    response = await hostile.http.post(
        "/v1/chat/completions",
        content=body,
        headers={**hostile.key, "content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    # Refused before the engine: and the next request is charged and recorded.
    ok = await hostile.http.post("/v1/chat/completions", json=CHAT, headers=hostile.key)
    assert ok.status_code == 200
    assert await usage_count(hostile) == before + 1
    balance = await hostile.http.get("/v1/users/me/balance", headers=hostile.key)
    assert balance.status_code == 200


# -- 5: NUL and over-long strings in URLs, ids and names -------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v1/files/file-%00",
        "/v1/files?after=%00",
        "/v1/files?purpose=%00",
        "/v1/files/file-%00/content",
        "/v1/batches/batch-%00",
        "/v1/batches?after=%00",
    ],
)
async def test_nul_in_urls_is_a_400(hostile: Hostile, path: str):
    assert "URL" in refused(await hostile.http.get(path, headers=hostile.key))


async def test_over_long_ids_are_not_found(hostile: Hostile):
    response = await hostile.http.get("/v1/files/file-" + "x" * 5000, headers=hostile.key)
    refused(response, 404)
    response = await hostile.http.get("/v1/batches/batch-" + "x" * 5000, headers=hostile.key)
    refused(response, 404)


@pytest.mark.parametrize("file_id", ["file-\x00", "file-" + "x" * 100])
async def test_batches_refuse_unstorable_input_file_ids(hostile: Hostile, file_id: str):
    body = {
        "input_file_id": file_id,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    refused(
        await hostile.http.post("/v1/batches", json=body, headers=hostile.key),
        param="input_file_id",
    )


async def test_ms_urls_with_unstorable_ids_are_refused(hostile: Hostile):
    content = [{"type": "image_url", "image_url": {"url": "ms://file-\x00"}}]
    body = {**CHAT, "messages": [{"role": "user", "content": content}]}
    response = await hostile.http.post("/v1/chat/completions", json=body, headers=hostile.key)
    assert 400 <= response.status_code < 500, response.text


@pytest.mark.parametrize("where", ["tools", "response_format"])
async def test_schemas_nested_too_deep_to_walk_are_a_400(hostile: Hostile, where: str):
    deep: dict[str, object] = {"type": "string"}
    for _ in range(70):  # valid but for its depth (and within the JSON parser's 200 levels)
        deep = {"anyOf": [deep, {"type": "null"}]}
    schema = {"type": "object", "properties": {"a": deep}}
    extra: dict[str, object] = {
        "tools": {
            "tools": [{"type": "function", "function": {"name": "deep", "parameters": schema}}],
            "tool_choice": "required",
        },
        "response_format": {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "d", "schema": schema},
            }
        },
    }[where]
    response = await hostile.http.post(
        "/v1/chat/completions", json={**CHAT, **extra}, headers=hostile.key
    )
    assert "more than 64 levels" in refused(response)


def multipart(filename: str, content: bytes = b"hello") -> tuple[bytes, str]:
    """An upload whose filename bytes are sent as they are (httpx would
    percent-encode a NUL and cannot encode a lone surrogate)."""
    boundary = "hostile-boundary"
    name = filename.encode("utf-8", "surrogatepass")
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n'
        f"file-extract\r\n--{boundary}\r\n".encode()
        + b'Content-Disposition: form-data; name="file"; filename="'
        + name
        + b'"\r\nContent-Type: text/plain\r\n\r\n'
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


async def upload_named(hostile: Hostile, filename: str) -> httpx.Response:
    body, content_type = multipart(filename)
    return await hostile.http.post(
        "/v1/files", content=body, headers={**hostile.key, "content-type": content_type}
    )


@pytest.mark.parametrize("name", ["n" * 600 + ".txt", "a\x00b.txt"])
async def test_upload_filenames_are_bounded(hostile: Hostile, name: str):
    response = await upload_named(hostile, name)
    assert "filename" in refused(response, param="file")
    listing = await hostile.http.get("/v1/files", headers=hostile.key)
    assert listing.json()["data"] == []


async def test_a_multipart_body_cut_before_its_closing_boundary_is_refused(hostile: Hostile):
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfile-extract\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\n'
        "the first half of a file"
    ).encode()
    response = await hostile.http.post(
        "/v1/files",
        content=body,
        headers={**hostile.key, "content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert "closing boundary" in refused(response)
    assert (await hostile.http.get("/v1/files", headers=hostile.key)).json()["data"] == []


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/admin/accounts", {"name": "a" * 201}, "name"),
        ("/admin/accounts", {"name": "a\x00b"}, "name"),
        # a lone surrogate is not even valid JSON to the parser: a 400 all the same
        ("/admin/accounts", {"name": "a\ud800"}, None),
        ("/admin/accounts/{account}/keys", {"name": "k" * 201}, "name"),
        ("/admin/accounts/{account}/topup", {"amount": 1, "reason": "r" * 201}, "reason"),
        ("/admin/accounts/{account}/topup", {"amount": 1, "reason": "a\x00"}, "reason"),
        ("/admin/accounts/{account}/topup", {"amount": 1, "reference": "r" * 65}, "reference"),
    ],
)
async def test_admin_strings_are_bounded(
    hostile: Hostile, path: str, body: dict, param: str | None
):
    account = (await hostile.http.get("/admin/accounts", headers=hostile.admin)).json()[0]
    response = await hostile.http.post(
        path.format(account=account["id"]),
        content=json.dumps(body).encode(),
        headers={**hostile.admin, "content-type": "application/json"},
    )
    refused(response, param=param)


async def test_admin_paths_with_nul_are_refused(hostile: Hostile):
    refused(await hostile.http.get("/admin/usage?account=%00", headers=hostile.admin))
    response = await hostile.http.post(
        "/admin/accounts/" + "x" * 300 + "/topup", json={"amount": 1}, headers=hostile.admin
    )
    refused(response, 404)


# -- 6: amounts and limits ------------------------------------------------------------


@pytest.mark.parametrize(
    "amount", ["1e15", "1e30", "9223372036854.775807", "0.0000001", "-1", "0", "NaN", "Infinity"]
)
async def test_admin_amounts_are_range_checked(hostile: Hostile, amount: str):
    account = (await hostile.http.get("/admin/accounts", headers=hostile.admin)).json()[0]
    before = account["cash_balance"]
    # Sent as a JSON number where it is one (1e30 must not become a float first).
    raw = amount if amount not in ("NaN", "Infinity") else json.dumps(amount)
    response = await hostile.http.post(
        f"/admin/accounts/{account['id']}/topup",
        content=f'{{"amount": {raw}}}'.encode(),
        headers={**hostile.admin, "content-type": "application/json"},
    )
    refused(response, param="amount")
    after = (await hostile.http.get("/admin/accounts", headers=hostile.admin)).json()[0]
    assert after["cash_balance"] == before


async def test_a_balance_cannot_overflow(hostile: Hostile):
    account = (await hostile.http.get("/admin/accounts", headers=hostile.admin)).json()[0]
    near_the_top = MAX_BALANCE_MICRO - 10**14  # ¥1e8 below what a column holds
    async with hostile.db.transaction() as session:
        await session.execute(
            update(Account).where(Account.id == account["id"]).values(cash_micro=near_the_top)
        )
    url = f"/admin/accounts/{account['id']}/topup"
    response = await hostile.http.post(url, json={"amount": 10**9}, headers=hostile.admin)
    refused(response, param="amount")
    async with hostile.db.read() as session:
        stored = await session.get(Account, account["id"])
    assert stored is not None and stored.cash_micro == near_the_top


@pytest.mark.parametrize("field", ["concurrency", "rpm", "tpm", "tpd"])
async def test_admin_limits_are_range_checked(hostile: Hostile, field: str):
    account = (await hostile.http.get("/admin/accounts", headers=hostile.admin)).json()[0]
    response = await hostile.http.put(
        f"/admin/accounts/{account['id']}/limits",
        json={field: 2**63},
        headers=hostile.admin,
    )
    refused(response, param=field)


# -- "also seen": the admin token is a Bearer token only --------------------------------


async def test_the_admin_token_is_accepted_only_as_bearer(hostile: Hostile):
    for scheme in ("Basic", "Token", ""):
        response = await hostile.http.get(
            "/admin/accounts", headers={"Authorization": f"{scheme} {TOKEN}".strip()}
        )
        refused(response, 401)


# -- deep nesting: the parser's limit, not Python's stack --------------------------------


@pytest.mark.parametrize(
    "path",
    ["/v1/chat/completions", "/v1/tokenizers/estimate-token-count", "/v1/batches"],
)
async def test_deeply_nested_bodies_are_a_400(hostile: Hostile, path: str):
    deep = b'{"model": "moonshot-v1-8k", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = await hostile.http.post(
        path, content=deep, headers={**hostile.key, "content-type": "application/json"}
    )
    assert "JSON" in refused(response)


# -- the standing hostile suite ----------------------------------------------------------

HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec=None, exclude_categories=()), min_size=1, max_size=40),
    st.builds(lambda a, b: a + "\x00" + b, st.text(max_size=8), st.text(max_size=8)),
    st.builds(lambda a: a + "\ud800", st.text(max_size=8)),
    st.integers(min_value=100, max_value=3000).map(lambda n: "x" * n),
)
FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def raw_json(body: object) -> bytes:
    # json.dumps writes a lone surrogate as its escape, as a hostile client would.
    return json.dumps(body).encode()


@FUZZ
@given(text=HOSTILE_TEXT, field=st.sampled_from(["prompt_cache_key", "safety_identifier"]))
async def test_fuzz_chat_fields(hostile: Hostile, text: str, field: str):
    response = await hostile.http.post(
        "/v1/chat/completions",
        content=raw_json({**CHAT, field: text}),
        headers={**hostile.key, "content-type": "application/json"},
    )
    assert response.status_code in (200, 400), response.text
    assert (await hostile.http.get("/v1/users/me/balance", headers=hostile.key)).status_code == 200


@FUZZ
@given(text=HOSTILE_TEXT)
async def test_fuzz_upload_filenames(hostile: Hostile, text: str):
    response = await upload_named(
        hostile, text.replace('"', "").replace("\r", "").replace("\n", "")
    )
    assert response.status_code in (200, 400), response.text
    if response.status_code == 200:
        file_id = response.json()["id"]
        assert (await hostile.http.get(f"/v1/files/{file_id}", headers=hostile.key)).is_success
        await hostile.http.delete(f"/v1/files/{file_id}", headers=hostile.key)


@FUZZ
@given(
    text=HOSTILE_TEXT,
    field=st.sampled_from(["input_file_id", "endpoint", "completion_window", "metadata"]),
)
async def test_fuzz_batch_fields(hostile: Hostile, text: str, field: str):
    body: dict[str, object] = {
        "input_file_id": "file-none",
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    body[field] = {text: text} if field == "metadata" else text
    response = await hostile.http.post(
        "/v1/batches",
        content=raw_json(body),
        headers={**hostile.key, "content-type": "application/json"},
    )
    assert 400 <= response.status_code < 500, response.text


@FUZZ
@given(text=HOSTILE_TEXT, where=st.sampled_from(["path", "after", "purpose"]))
async def test_fuzz_urls(hostile: Hostile, text: str, where: str):
    quoted = quote(text.encode("utf-8", "surrogatepass"), safe="")
    url = {
        "path": f"/v1/files/{quoted}",
        "after": f"/v1/files?after={quoted}",
        "purpose": f"/v1/files?purpose={quoted}",
    }[where]
    response = await hostile.http.get(url, headers=hostile.key)
    assert response.status_code in (200, 307, 400, 404, 405), response.text


@FUZZ
@given(
    text=HOSTILE_TEXT,
    where=st.sampled_from(["account", "key", "reason", "reference"]),
)
async def test_fuzz_admin_fields(hostile: Hostile, text: str, where: str):
    account = (await hostile.http.get("/admin/accounts", headers=hostile.admin)).json()[0]
    path, body = {
        "account": ("/admin/accounts", {"name": text}),
        "key": (f"/admin/accounts/{account['id']}/keys", {"name": text}),
        "reason": (f"/admin/accounts/{account['id']}/vouchers", {"amount": 1, "reason": text}),
        "reference": (
            f"/admin/accounts/{account['id']}/vouchers",
            {"amount": 1, "reference": text},
        ),
    }[where]
    response = await hostile.http.post(
        path, content=raw_json(body), headers={**hostile.admin, "content-type": "application/json"}
    )
    assert response.status_code in (200, 201, 400), response.text
