"""Prometheus metrics: what an operator graphs and alerts on.

Counters and histograms are updated where things happen (the middleware for
every HTTP request, chat for tokens and time to first token); engine and
batch gauges are read when /metrics is scraped, so they cost nothing between
scrapes. Each process keeps its own registry: scrape every replica.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moonbase.engines.base import ChatEngine, Engine
from moonbase.store.database import Database
from moonbase.store.tables import Batch

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "moonbase_requests",
            "HTTP requests by route, model and status",
            ["route", "model", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "moonbase_request_seconds",
            "Time to the end of the response, by route and model",
            ["route", "model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.first_token = Histogram(
            "moonbase_time_to_first_token_seconds",
            "Time from admission to the first generated text, by model",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "moonbase_tokens",
            "Tokens processed, by model and kind (prompt, cached, completion)",
            ["model", "kind"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "moonbase_charges_dead_lettered",
            "Charges the database refused on their own, set aside for an operator",
            registry=self.registry,
        )
        self.engine_queue = Gauge(
            "moonbase_engine_queue_depth",
            "Requests waiting for an engine",
            ["engine"],
            registry=self.registry,
        )
        self.engine_active = Gauge(
            "moonbase_engine_active_sequences",
            "Sequences an engine is generating (upstream: requests in flight from here)",
            ["engine"],
            registry=self.registry,
        )
        self.engine_replicas = Gauge(
            "moonbase_engine_healthy_replicas",
            "Upstream replicas not ejected",
            ["engine"],
            registry=self.registry,
        )
        self.batches = Gauge(
            "moonbase_batches", "Batches by status", ["status"], registry=self.registry
        )
        self.batch_lines = Gauge(
            "moonbase_batch_lines",
            "Lines of unfinished batches, by state (total, completed, failed)",
            ["state"],
            registry=self.registry,
        )

    def record_usage(self, model: str, prompt: int, cached: int, completion: int) -> None:
        self.tokens.labels(model, "prompt").inc(prompt)
        self.tokens.labels(model, "cached").inc(cached)
        self.tokens.labels(model, "completion").inc(completion)

    async def render(self, engines: Mapping[str, Engine | ChatEngine], db: Database) -> bytes:
        """The exposition text, with engine and batch gauges read now."""
        for name, engine in engines.items():
            health = await engine.health()
            replicas = health.get("replicas")
            if replicas is not None:
                self.engine_active.labels(name).set(sum(r["in_flight"] for r in replicas))
                self.engine_replicas.labels(name).set(sum(bool(r["healthy"]) for r in replicas))
                self.engine_queue.labels(name).set(0)
            else:
                self.engine_active.labels(name).set(health.get("active_sequences", 0))
                self.engine_queue.labels(name).set(health.get("queued", 0))
        await self._read_batches(db)
        return bytes(generate_latest(self.registry))

    async def _read_batches(self, db: Database) -> None:
        async with db.read() as session:
            by_status = await session.execute(
                select(Batch.status, func.count()).group_by(Batch.status)
            )
            for status, count in by_status.all():
                self.batches.labels(status).set(count)
            open_lines = await session.execute(
                select(
                    func.coalesce(func.sum(Batch.total), 0),
                    func.coalesce(func.sum(Batch.completed), 0),
                    func.coalesce(func.sum(Batch.failed), 0),
                ).where(Batch.status.in_(("validating", "in_progress", "finalizing")))
            )
            total, completed, failed = open_lines.one()
            self.batch_lines.labels("total").set(total)
            self.batch_lines.labels("completed").set(completed)
            self.batch_lines.labels("failed").set(failed)


class MetricsMiddleware:
    """Counts every HTTP request by its route template (not its raw path, which
    would make a series per file id), the model it named and its status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            key = (_route_of(scope), scope.get("state", {}).get("model", ""), status)
            series = self._series.get(key)
            if series is None:  # labels() takes a lock and builds a key: once per series
                route, model, _ = key
                series = self._series[key] = (
                    self.metrics.requests.labels(route, model, str(status)),
                    self.metrics.latency.labels(route, model),
                )
            series[0].inc()
            series[1].observe(time.perf_counter() - started)


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
