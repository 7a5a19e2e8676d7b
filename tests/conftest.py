"""Shared fixtures: databases (SQLite and PostgreSQL) and an app on a scripted engine."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
from hypothesis import settings as hypothesis_settings
from starlette.types import ASGIApp

from moonbase import admin
from moonbase.app import create_app
from moonbase.billing.service import BillingService
from moonbase.settings import EMBEDDED_ENGINE, Settings
from moonbase.store.database import Database
from tests.fakes import ScriptedEngine

# Hypothesis's default 200 ms deadline per example measures the machine, not
# the code: on a busy 2-core machine it fails correct tests. Speed is bench/'s.
hypothesis_settings.register_profile("moonbase", deadline=None)
hypothesis_settings.load_profile("moonbase")

PG_ADMIN_DSN = os.environ.get("MOONBASE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


async def create_pg_database() -> str:
    """A fresh, uniquely named PostgreSQL database; returns its SQLAlchemy URL."""
    name = f"moonbase_test_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}"


async def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


BOTH_DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@asynccontextmanager
async def empty_database(kind: str, tmp_path: Path) -> AsyncIterator[Database]:
    """A new database of ``kind`` ("sqlite" or "postgresql"), not migrated, dropped after."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'moonbase.db'}"
    else:
        url = await create_pg_database()
    db = Database(url)
    try:
        yield db
    finally:
        await db.dispose()
        if kind == "postgresql":
            await drop_pg_database(url)


@pytest.fixture(params=BOTH_DATABASES)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty database: each test runs on SQLite and on PostgreSQL."""
    async with empty_database(request.param, tmp_path) as db:
        await db.migrate()
        yield db


class PlatformClient:
    """An httpx client on the ASGI app, with a valid key and the engine behind it."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        key: str,
        engine: ScriptedEngine,
        db: Database,
        billing: BillingService,
        app: ASGIApp,
    ):
        self.app = app  # for clients that bring their own HTTP library
        self.http = client
        self.key = key
        self.engine = engine
        self.db = db
        self.billing = billing

    async def settled(self) -> None:
        """Charges commit just after their responses: wait for them."""
        await self.billing.flushed()

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def post(self, path: str, **kwargs: object) -> httpx.Response:
        return await self.http.post(path, headers=self.headers(), **kwargs)  # type: ignore[arg-type]

    async def get(self, path: str) -> httpx.Response:
        return await self.http.get(path, headers=self.headers())


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[PlatformClient]:
    """The whole app on SQLite and a scripted engine, driven in-process."""
    settings = Settings(data_dir=tmp_path)
    engine = ScriptedEngine()
    db = Database(settings.resolved_database_url)
    await db.migrate()
    issued = await admin.bootstrap(db, settings.billing)
    assert issued is not None
    app = create_app(settings, engines={EMBEDDED_ENGINE: engine}, db=db)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://moonbase") as client:
            billing = app.state.services.billing
            yield PlatformClient(client, issued.secret, engine, db, billing, app)
    await db.dispose()
