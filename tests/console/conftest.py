"""The organisation harness (every role signed in) on SQLite, for the
console's HTTP-level tests; the browser tests start their own server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import empty_database
from tests.console.browser import browser, console_server, screenshots  # noqa: F401
from tests.organization.harness import Org, organisations


@pytest.fixture
async def org(tmp_path: Path) -> AsyncIterator[Org]:
    async with empty_database("sqlite", tmp_path) as db:
        await db.migrate()
        async with organisations(db, tmp_path) as built:
            yield built
