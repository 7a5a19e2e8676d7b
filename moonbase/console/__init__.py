"""The console: the platform in a browser, at ``/console``, served by the same
app (server-rendered Jinja2 pages, htmx and uPlot vendored as static files: no
Node, no CDN). It is a client of the same services as the management API and
every action is judged by the same ``Principal``; see docs/console.md for how
to add a page."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from moonbase.console.pages import STATIC


def routers() -> list[APIRouter]:
    """Every page module's router, the catch-all (a console 404 page) last."""
    from moonbase.console.routes import (
        auth,
        batches,
        billing,
        files,
        invites,
        keys,
        limits,
        not_found,
        operator_audit,
        operator_engines,
        operator_orgs,
        overview,
        playground,
        projects,
        usage,
    )

    pages = (
        auth,
        invites,
        overview,
        projects,
        keys,
        usage,
        billing,
        limits,
        files,
        batches,
        playground,
        operator_orgs,
        operator_engines,
        operator_audit,
        not_found,  # last
    )
    return [module.router for module in pages]


def mount(app: FastAPI) -> None:
    # The static files first: the catch-all page would otherwise answer for them.
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    for router in routers():
        app.include_router(router)
