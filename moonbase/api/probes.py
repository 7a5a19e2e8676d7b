"""/health, /ready and /metrics: what load balancers, orchestrators and Prometheus ask."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from moonbase.api.deps import HealthDep

router = APIRouter(include_in_schema=False)


@router.get("/health")
async def health(probe: HealthDep) -> dict[str, object]:
    """Liveness: the process answers (restart it if not). Engine details for people."""
    engines = await probe.engines() if probe is not None else {}
    return {"status": "ok", "engines": {name: state.details for name, state in engines.items()}}


@router.get("/ready")
async def ready(probe: HealthDep) -> Response:
    """Readiness: the database answers and every engine can take a request now;
    a load balancer sends traffic only while this is 200."""
    problems = ["starting"] if probe is None else (await probe.readiness()).problems
    body = {"status": "ready" if not problems else "not ready", "problems": problems}
    return JSONResponse(body, status_code=200 if not problems else 503)


@router.get("/metrics")
async def metrics(probe: HealthDep) -> Response:
    text = await probe.metrics_text() if probe is not None else b""
    return Response(text, media_type=CONTENT_TYPE_LATEST)
