"""/metrics, /health, /ready and JSON logs with the request id."""

from __future__ import annotations

import json
import logging

import pytest

from moonbase.logs import JsonFormatter, configure_logging
from tests.conftest import PlatformClient

USER = [{"role": "user", "content": "hi"}]


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in Prometheus text, 0 if absent."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{key}="{value}"' in line for key, value in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_count_requests_tokens_and_first_token_time(platform: PlatformClient):
    for stream in (False, True):
        response = await platform.post(
            "/v1/chat/completions",
            json={"model": "kimi-k2-turbo-preview", "messages": USER, "stream": stream},
        )
        assert response.status_code == 200
    await platform.post("/v1/chat/completions", json={"model": "nope", "messages": USER})
    await platform.get("/v1/files/file-missing")
    text = (await platform.http.get("/metrics")).text
    route = "/v1/chat/completions"
    ok = sample(
        text, "moonbase_requests_total", route=route, model="kimi-k2-turbo-preview", status="200"
    )
    assert ok == 2
    # An unknown model is "other": clients cannot mint a series per made-up name.
    assert sample(text, "moonbase_requests_total", route=route, model="other", status="404") == 1
    assert 'model="nope"' not in text
    # A raw path (a file id) never becomes a label: the route template does.
    assert sample(text, "moonbase_requests_total", route="/v1/files/{file_id}", status="404") == 1
    completion = sample(
        text, "moonbase_tokens_total", model="kimi-k2-turbo-preview", kind="completion"
    )
    assert completion == 2 * len(platform.engine.reply)
    assert (
        sample(text, "moonbase_time_to_first_token_seconds_count", model="kimi-k2-turbo-preview")
        == 2
    )
    assert (
        sample(text, "moonbase_request_seconds_count", route=route, model="kimi-k2-turbo-preview")
        == 2
    )
    assert "moonbase_engine_active_sequences" in text
    assert "moonbase_batch_lines" in text


async def test_health_and_ready(platform: PlatformClient):
    health = await platform.http.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    ready = await platform.http.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "problems": []}


async def test_ready_is_503_while_the_database_is_unreachable(
    platform: PlatformClient, monkeypatch: pytest.MonkeyPatch
):
    async def unreachable() -> None:
        raise ConnectionRefusedError("database down")

    monkeypatch.setattr(platform.db, "ping", unreachable)
    ready = await platform.http.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["problems"] == ["database: ConnectionRefusedError"]


def test_json_logs_carry_the_request_id(capsys: pytest.CaptureFixture[str]):
    from moonbase.logs import request_id_var

    configure_logging("info", "json")
    token = request_id_var.set("abc123")
    try:
        logging.getLogger("moonbase.test").warning("engine %s is slow", "kimi")
    finally:
        request_id_var.reset(token)
        logging.getLogger().handlers[:] = []
    line = capsys.readouterr().err.strip().splitlines()[-1]
    entry = json.loads(line)
    assert entry["message"] == "engine kimi is slow"
    assert entry["request_id"] == "abc123" and entry["level"] == "warning"
    assert isinstance(JsonFormatter().format(logging.makeLogRecord({"msg": "x"})), str)
