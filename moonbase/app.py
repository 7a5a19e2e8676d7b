"""The HTTP application: middleware and routers over the running services."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI

from moonbase.api import (
    admin,
    alerts,
    anthropic,
    balance,
    batches,
    chat,
    files,
    models,
    organization,
    probes,
    self_service,
    tokenizers,
)
from moonbase.api.body_limit import BodyLimitMiddleware
from moonbase.api.body_timeout import BodyTimeoutMiddleware
from moonbase.api.error_handlers import register_error_handlers
from moonbase.api.metrics_middleware import MetricsMiddleware
from moonbase.api.middleware import RequestIdMiddleware
from moonbase.api.shutdown import ShutdownMiddleware
from moonbase.console import mount as mount_console
from moonbase.engines.base import ChatEngine, Engine
from moonbase.metrics import Metrics
from moonbase.services import running_services
from moonbase.settings import Settings
from moonbase.store.database import Database


def create_app(
    settings: Settings,
    *,
    engines: Mapping[str, Engine | ChatEngine] | None = None,
    db: Database | None = None,
) -> FastAPI:
    """Build the app over ``running_services``. Tests pass their own engines (a
    scripted fake) or database."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_services(settings, engines=engines, db=db, metrics=metrics) as services:
            app.state.services = services
            app.state.batch_worker = services.worker
            yield

    metrics = Metrics()
    app = FastAPI(
        title="moonbase",
        summary="A self-hosted Moonshot AI (Kimi) platform",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    # Starlette runs the last added first. From the outside in: metrics (every
    # request counted and timed, refusals included), the request id (even a
    # refused body gets one), shutdown, the body's read timeout, its size limit.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(BodyTimeoutMiddleware, timeout_s=settings.body_read_timeout_s)
    app.add_middleware(ShutdownMiddleware)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    # Starlette tries routes in order, on every request and again for the
    # metrics' route template: the completions, the hot path, come first.
    routers = [
        chat.router,
        anthropic.router,
        models.router,
        files.router,
        batches.router,
        tokenizers.router,
        balance.router,
        self_service.router,
        organization.auth_router,
        organization.router,
        admin.router,
        alerts.router,
        probes.router,
    ]
    for router in routers:
        app.include_router(router)
    mount_console(app)  # /console: the pages and their static files
    register_error_handlers(app, routers)
    return app
