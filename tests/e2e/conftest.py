"""One real moonbase (embedded SmolLM2, SQLite) for the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.e2e.server import RunningServer, async_openai_client, openai_client, start_server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(Path(tmp_path_factory.mktemp("moonbase-e2e")))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def client(server: RunningServer) -> openai.OpenAI:
    return openai_client(f"{server.base_url}/v1", server.api_key)


@pytest.fixture(scope="session")
def aclient(server: RunningServer) -> openai.AsyncOpenAI:
    return async_openai_client(f"{server.base_url}/v1", server.api_key)
