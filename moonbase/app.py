"""The application factory: wires settings, store, engines and routers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from moonbase.api import admin, balance, batches, chat, files, models, tokenizers
from moonbase.api.body_limit import BodyLimitMiddleware
from moonbase.api.body_timeout import BodyTimeoutMiddleware
from moonbase.api.deps import Services
from moonbase.api.error_handlers import register_error_handlers
from moonbase.api.middleware import RequestIdMiddleware
from moonbase.api.shutdown import ShutdownMiddleware
from moonbase.batches.service import BatchService
from moonbase.batches.worker import BatchWorker
from moonbase.billing.limiter import LocalLimiter, RateLimiter, RedisLimiter
from moonbase.billing.service import BillingService
from moonbase.chat.media import MediaResolver
from moonbase.chat.service import ChatService
from moonbase.engines.base import ChatEngine, Engine
from moonbase.files.blobs import BlobStore, LocalBlobStore
from moonbase.files.service import FileService
from moonbase.key_cache import KeyCache
from moonbase.metrics import Metrics, MetricsMiddleware
from moonbase.registry import ModelRegistry
from moonbase.settings import Settings, UpstreamEngineSettings
from moonbase.store.database import Database

log = logging.getLogger(__name__)


def start_engine(name: str, settings: Settings) -> Engine | ChatEngine:
    config = settings.engines[name]
    if isinstance(config, UpstreamEngineSettings):
        from moonbase.engines.upstream.engine import UpstreamEngine

        names = {
            model_id: model.upstream_model
            for model_id, model in settings.models.items()
            if (model.engine or settings.default_engine) == name and model.upstream_model
        }
        log.info("engine %s: %s upstream at %s", name, config.flavour, ", ".join(config.urls))
        return UpstreamEngine(name, config, names)
    from moonbase.engines.llamacpp.engine import LlamaCppEngine

    engine = LlamaCppEngine(config)
    log.info("engine %s: llama.cpp, %s", name, engine.model_path)
    return engine


def open_limiter(settings: Settings) -> RateLimiter:
    if settings.redis_url:
        return RedisLimiter(settings.redis_url)
    return LocalLimiter()


def open_blob_store(settings: Settings) -> BlobStore:
    if settings.files.s3 is not None:
        from moonbase.files.s3_blobs import S3BlobStore

        return S3BlobStore(settings.files.s3, spool_dir=settings.data_dir / "spool")
    return LocalBlobStore(settings.resolved_blob_dir)


def create_app(
    settings: Settings,
    *,
    engines: Mapping[str, Engine | ChatEngine] | None = None,
    db: Database | None = None,
) -> FastAPI:
    """Build the app. Tests pass their own engines (a scripted fake) or database."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = db or Database(
            settings.resolved_database_url,
            settings.database_pool_size,
            settings.database_max_overflow,
        )
        await database.migrate()
        owned: dict[str, Engine | ChatEngine] = {}
        if engines is None:
            for name in settings.engines:
                owned[name] = await asyncio.to_thread(start_engine, name, settings)
        running = dict(engines) if engines is not None else owned
        registry = ModelRegistry.build(settings, running)
        billing = BillingService(
            database,
            settings.billing,
            open_limiter(settings),
            settings.data_dir / "journal",
            on_dead_letter=metrics.dead_letters.inc,
        )
        await billing.recover()  # charges a crashed process journaled, not committed
        blobs = open_blob_store(settings)
        files = FileService(database, blobs, settings.files)
        media = MediaResolver(settings.media, files)
        chat_service = ChatService(
            registry, billing, media, settings.default_max_completion_tokens, metrics
        )
        app.state.services = Services(
            settings=settings,
            db=database,
            registry=registry,
            billing=billing,
            chat=chat_service,
            files=files,
            batches=BatchService(database, files, settings.batches),
            keys=KeyCache(database, settings.billing.state_refresh_s),
        )
        worker = None
        if settings.batches.run_worker:
            app.state.batch_worker = BatchWorker(
                database, files, chat_service, billing, settings.batches, settings.max_request_bytes
            )
            worker = asyncio.create_task(app.state.batch_worker.run(), name="batch-worker")
        try:
            yield
        finally:
            if worker is not None:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            await billing.close()
            for engine in owned.values():
                await engine.close()
            await blobs.close()
            if db is None:
                await database.dispose()

    metrics = Metrics()
    app = FastAPI(
        title="moonbase",
        summary="A self-hosted Moonshot AI (Kimi) platform",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(BodyTimeoutMiddleware, timeout_s=settings.body_read_timeout_s)
    app.add_middleware(ShutdownMiddleware)
    # Added last, so outermost: even a refused body gets its request id.
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    routers = [
        module.router for module in (models, chat, files, batches, tokenizers, balance, admin)
    ]
    for router in routers:
        app.include_router(router)
    register_error_handlers(app, routers)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, object]:
        """Liveness: the process answers (restart it if not). Engine details for people."""
        services: Services = app.state.services
        return {
            "status": "ok",
            "engines": {
                name: await engine.health() for name, engine in services.registry.engines().items()
            },
        }

    @app.get("/ready", include_in_schema=False)
    async def ready() -> Response:
        """Readiness: the database answers and every engine can take a request now;
        a load balancer sends traffic only while this is 200."""
        services: Services = getattr(app.state, "services", None)  # type: ignore[assignment]
        problems: list[str] = []
        if services is None:
            problems.append("starting")
        else:
            try:
                await services.db.ping()
            except Exception as exc:  # any failure means: not ready
                problems.append(f"database: {type(exc).__name__}")
            for name, engine in services.registry.engines().items():
                state = await engine.health()
                if not state.get("ready", state.get("status") == "ok"):
                    problems.append(f"engine {name}: not ready")
        body = {"status": "ready" if not problems else "not ready", "problems": problems}
        return JSONResponse(body, status_code=200 if not problems else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_text() -> Response:
        services: Services = app.state.services
        text = await metrics.render(services.registry.engines(), services.db)
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    return app
