"""The services are built apart from the HTTP app: the worker never imports it."""

from __future__ import annotations

import subprocess
import sys

import httpx

from moonbase.app import create_app
from moonbase.settings import Settings


def test_the_worker_command_does_not_import_the_http_app() -> None:
    # A fresh interpreter: this one has the app imported already.
    probe = (
        "import sys, moonbase.cli, moonbase.services\n"
        "loaded = [m for m in ('moonbase.app', 'moonbase.api', 'fastapi') if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "", f"the worker's imports pull in {done.stdout.strip()}"


async def test_the_probes_answer_before_the_services_are_up(tmp_path) -> None:
    # No lifespan has run: the app has routers but no services yet.
    app = create_app(Settings(data_dir=tmp_path), engines={})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://m") as http:
        ready = await http.get("/ready")
        health = await http.get("/health")
    assert ready.status_code == 503
    assert ready.json() == {"status": "not ready", "problems": ["starting"]}
    assert health.json() == {"status": "ok", "engines": {}}
    assert "/health" not in app.openapi()["paths"]  # for operators, not in the API document
