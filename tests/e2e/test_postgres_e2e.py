"""The same server on PostgreSQL: keys, chat and usage records through the real stack."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import openai
import pytest

from tests.conftest import create_pg_database, drop_pg_database
from tests.e2e.server import openai_client, start_server

pytestmark = pytest.mark.postgres


def test_serves_and_records_on_postgresql(tmp_path: Path):
    url = asyncio.run(create_pg_database())
    env = {"MOONBASE_DATABASE_URL": url}
    server = start_server(tmp_path / "pg", extra_env=env)
    try:
        client = openai_client(f"{server.base_url}/v1", server.api_key)
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
        second = openai_client(f"{server.base_url}/v1", key)
        assert len(second.models.list().data) == 14
        subprocess.run([*cli, "revoke", key_id], env=cli_env, check=True, capture_output=True)
        listing = subprocess.run(
            [*cli, "list"], env=cli_env, capture_output=True, text=True, check=True
        ).stdout
        assert key not in listing and key[:7] in listing and "revoked" in listing
        # Gateways remember keys for billing.state_refresh_s (1 s): a revocation
        # made elsewhere (the CLI) takes effect within that.
        deadline = time.monotonic() + 60
        with pytest.raises(openai.AuthenticationError):
            while time.monotonic() < deadline:
                second.models.list()
                time.sleep(0.2)
    finally:
        server.stop()
        asyncio.run(drop_pg_database(url))
