"""Prometheus metrics: what an operator graphs and alerts on.

Counters and histograms are updated where things happen (``api.metrics_middleware``
for every HTTP request, chat for tokens and time to first token); engine and
batch gauges are read when /metrics is scraped (``health.HealthService``), so
they cost nothing between scrapes. Each process keeps its own registry: scrape
every replica.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from moonbase.engines.base import EngineHealth
from moonbase.store.repositories import batches as batch_rows

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
        self.webhook_deliveries = Counter(
            "moonbase_webhook_deliveries",
            "Webhook delivery attempts by outcome (delivered, retried, failed: given up)",
            ["outcome"],
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

    def render(self, engines: Mapping[str, EngineHealth], batches: batch_rows.Overview) -> bytes:
        """The exposition text, with engine and batch gauges as read now."""
        for name, health in engines.items():
            self.engine_active.labels(name).set(health.active)
            self.engine_queue.labels(name).set(health.queued)
            if health.healthy_replicas is not None:
                self.engine_replicas.labels(name).set(health.healthy_replicas)
        for status, count in batches.by_status.items():
            self.batches.labels(status).set(count)
        self.batch_lines.labels("total").set(batches.open_total)
        self.batch_lines.labels("completed").set(batches.open_completed)
        self.batch_lines.labels("failed").set(batches.open_failed)
        return bytes(generate_latest(self.registry))
