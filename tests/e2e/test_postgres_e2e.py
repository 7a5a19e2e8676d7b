"""The same server on PostgreSQL: keys, chat and usage records through the real stack."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
import openai
import pytest

from tests.conftest import create_pg_database, drop_pg_database
from tests.e2e.server import start_server

pytestmark = pytest.mark.postgres


def test_serves_and_records_on_postgresql(tmp_path: Path):
    url = asyncio.run(create_pg_database())
    env = {"MOONBASE_DATABASE_URL": url}
    server = start_server(tmp_path / "pg", extra_env=env)
    try:
        client = openai.OpenAI(
            base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0
        )
        raw = client.chat.completions.with_raw_response.create(
            model="kimi-k2.6",
            messages=[{"role": "user", "content": "Say hello."}],
            max_completion_tokens=8,
            extra_body={"prompt_cache_key": "pg-session"},
        )
        completion = raw.parse()
        request_id = raw.headers["x-request-id"]

        async def fetch_record() -> asyncpg.Record:
            conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
            try:
                for _ in range(100):  # the charge commits just after the reply
                    row = await conn.fetchrow(
                        "SELECT * FROM usage_records WHERE request_id = $1", request_id
                    )
                    if row is not None:
                        return row
                    await asyncio.sleep(0.05)
                raise AssertionError(f"no usage record for {request_id}")
            finally:
                await conn.close()

        record = asyncio.run(fetch_record())
        assert record["prompt_tokens"] == completion.usage.prompt_tokens
        assert record["completion_tokens"] == completion.usage.completion_tokens
        assert record["prompt_cache_key"] == "pg-session"
        assert not (server.data_dir / "moonbase.db").exists()  # nothing went to SQLite

        # keys made by the CLI against the same database work, and revoking them bites
        cli = [sys.executable, "-m", "moonbase", "keys"]
        cli_env = {**os.environ, **env}
        created = subprocess.run(
            [*cli, "create", "--account", "pg-team"],
            env=cli_env,
            capture_output=True,
            text=True,
            check=True,
        )
        key, key_id = created.stdout.strip(), created.stderr.strip().removeprefix("id: ")
        second = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0)
        assert len(second.models.list().data) == 14
        subprocess.run([*cli, "revoke", key_id], env=cli_env, check=True, capture_output=True)
        listing = subprocess.run(
            [*cli, "list"], env=cli_env, capture_output=True, text=True, check=True
        ).stdout
        assert key not in listing and key[:7] in listing and "revoked" in listing
        with pytest.raises(openai.AuthenticationError):
            second.models.list()
    finally:
        server.stop()
        asyncio.run(drop_pg_database(url))


def test_rate_limits_hold_across_two_gateway_processes(tmp_path: Path):
    url = asyncio.run(create_pg_database())
    env = {"MOONBASE_DATABASE_URL": url}
    first = start_server(tmp_path / "a", extra_env=env)
    second = None
    try:
        # a second gateway on the same database bootstraps nothing: it uses the same key
        second = start_server(tmp_path / "b", extra_env=env, api_key=first.api_key)

        async def limit_owner_rpm() -> None:
            conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
            try:
                await conn.execute("UPDATE accounts SET limit_rpm = 3")
            finally:
                await conn.close()

        asyncio.run(limit_owner_rpm())
        body = {
            "model": "moonshot-v1-8k",
            "max_tokens": 2,
            "messages": [{"role": "user", "content": "hi"}],
        }
        headers = {"Authorization": f"Bearer {first.api_key}"}
        statuses = []
        for server in (first, second, first, second):
            response = httpx.post(
                f"{server.base_url}/v1/chat/completions", json=body, headers=headers, timeout=60
            )
            statuses.append(response.status_code)
        assert statuses == [200, 200, 200, 429]
        error = response.json()["error"]
        assert error["type"] == "rate_limit_reached_error" and "RPM: 3" in error["message"]
        assert 1 <= int(response.headers["retry-after"]) <= 60
    finally:
        first.stop()
        if second is not None:
            second.stop()
        asyncio.run(drop_pg_database(url))
