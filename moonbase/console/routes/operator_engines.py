"""Engines, for the platform operator: each engine's readiness, sequences
generating and queued, the models it serves, its replicas (upstream pools:
healthy or ejected, in flight, served) and their latest errors. Read from
``HealthService``, which refuses anyone but the operator."""

from __future__ import annotations

from starlette.responses import Response

from moonbase.api.deps import HealthDep
from moonbase.console.pages import MemberPage, console_router, nav
from moonbase.errors import ShuttingDownError

router = console_router()
nav("/console/operator/engines", "nav.engines", order=120, operator=True)


@router.get("/operator/engines")
async def engines(page: MemberPage, health: HealthDep) -> Response:
    if health is None:  # still starting
        raise ShuttingDownError("the server is starting")
    states = await health.engines_for(page.signed_in)
    return page.render("operator_engines.html", engines=states)
