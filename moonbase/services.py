"""The composition root: every long-lived service, built, started and closed here.

The HTTP app (``app.create_app``), ``moonbase worker`` and the tests all run
the platform through ``running_services``; none of them wires a service by
hand, and the worker never builds the HTTP app to reach one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from moonbase.admin import AdminService
from moonbase.alerts.delivery import WebhookSender
from moonbase.alerts.detector import SpendAlertDetector
from moonbase.alerts.manage import AlertsService
from moonbase.auth.key_cache import KeyCache
from moonbase.batches.service import BatchService
from moonbase.batches.worker import BatchWorker
from moonbase.billing.limiter import LocalLimiter, RateLimiter, RedisLimiter
from moonbase.billing.service import BillingService
from moonbase.billing.usage_retention import prune_periodically
from moonbase.chat.media import MediaResolver
from moonbase.chat.service import ChatService
from moonbase.engines.base import ChatEngine, Engine
from moonbase.files.blobs import BlobStore, LocalBlobStore
from moonbase.files.service import FileService
from moonbase.health import HealthService
from moonbase.metrics import Metrics
from moonbase.organization.service import OrganizationService
from moonbase.registry import ModelRegistry
from moonbase.settings import Settings, UpstreamEngineSettings
from moonbase.store.database import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    """Everything the platform holds for its lifetime."""

    settings: Settings
    registry: ModelRegistry
    billing: BillingService
    chat: ChatService
    files: FileService
    batches: BatchService
    keys: KeyCache
    admin: AdminService
    organization: OrganizationService
    health: HealthService
    worker: BatchWorker | None  # this process's batch worker, when it runs one
    alerts: AlertsService


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

    engine = LlamaCppEngine(config, settings.model_cache_dir)
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


@asynccontextmanager
async def running_services(
    settings: Settings,
    *,
    engines: Mapping[str, Engine | ChatEngine] | None = None,
    db: Database | None = None,
    metrics: Metrics | None = None,
) -> AsyncIterator[Services]:
    """Open the store, start the engines and the batch worker (where
    ``settings.batches.run_worker``), and close it all on the way out. Tests
    pass their own engines (a scripted fake) or database; those stay theirs."""
    metrics = metrics or Metrics()
    database = db or Database(
        settings.resolved_database_url, settings.database_pool_size, settings.database_max_overflow
    )
    await database.migrate()
    owned: dict[str, Engine | ChatEngine] = {}
    if engines is None:
        for name in settings.engines:
            owned[name] = await asyncio.to_thread(start_engine, name, settings)
    registry = ModelRegistry.build(settings, dict(engines) if engines is not None else owned)
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
    chat = ChatService(registry, billing, media, settings.default_max_completion_tokens, metrics)
    keys = KeyCache(database, settings.billing.state_refresh_s)
    worker = None
    if settings.batches.run_worker:
        worker = BatchWorker(
            database, files, chat, billing, settings.batches, settings.max_request_bytes
        )
    services = Services(
        settings=settings,
        registry=registry,
        billing=billing,
        chat=chat,
        files=files,
        batches=BatchService(database, files, settings.batches),
        keys=keys,
        admin=AdminService(database, billing, keys, settings),
        organization=OrganizationService(database, keys, billing, settings.users),
        health=HealthService(database, registry, metrics),
        worker=worker,
        alerts=AlertsService(database),
    )
    running = None if worker is None else asyncio.create_task(worker.run(), name="batch-worker")
    recorder = asyncio.create_task(
        keys.record_last_used(settings.key_last_used_interval_s), name="key-last-used"
    )
    # Spend alerts: detected after charges commit and sent from the outbox,
    # both off the request path (moonbase/alerts/).
    alert_tasks = []
    if settings.alerts.run:
        detector = SpendAlertDetector(database, settings.alerts)
        sender = WebhookSender(database, settings.alerts, metrics)
        alert_tasks = [
            asyncio.create_task(detector.run(), name="spend-alerts"),
            asyncio.create_task(sender.run(), name="webhook-sender"),
        ]
    # Raw usage records past their retention go, every process pruning in
    # chunks (several at once only find less to delete).
    pruner = asyncio.create_task(prune_periodically(database, settings.usage), name="usage-prune")
    try:
        yield services
    finally:
        for task in (running, recorder, pruner, *alert_tasks):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await billing.close()
        await media.close()
        for engine in owned.values():
            await engine.close()
        await blobs.close()
        if db is None:
            await database.dispose()
