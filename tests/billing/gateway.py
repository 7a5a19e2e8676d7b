"""A real moonbase gateway (uvicorn on loopback) over a scripted engine, in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from moonbase.app import create_app
from moonbase.settings import EMBEDDED_ENGINE, Settings
from moonbase.store.database import Database
from tests.e2e.server import free_port
from tests.fakes import ScriptedEngine


@asynccontextmanager
async def live_gateway(
    db: Database, settings: Settings, engine: ScriptedEngine
) -> AsyncIterator[str]:
    port = free_port()
    app = create_app(settings, engines={EMBEDDED_ENGINE: engine}, db=db)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
