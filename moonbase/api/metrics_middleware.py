"""Counts every HTTP request by route, model and status, and times it."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from moonbase.metrics import Metrics


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
