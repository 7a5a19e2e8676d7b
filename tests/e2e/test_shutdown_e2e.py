"""SIGTERM: a request still running when the grace period ends gets a
Moonshot-shaped 503 with retry-after, not uvicorn's bare text/plain 500."""

from __future__ import annotations

import concurrent.futures
import signal
import time
from pathlib import Path

import httpx

from tests.e2e.server import start_server

STORY = [{"role": "user", "content": "Write a very long story about a dragon."}]


def test_requests_cut_off_by_shutdown_get_a_503(tmp_path: Path):
    server = start_server(tmp_path)
    try:

        def long_request() -> httpx.Response:
            return httpx.post(
                f"{server.base_url}/v1/chat/completions",
                headers={"Authorization": f"Bearer {server.api_key}"},
                json={
                    "model": "moonshot-v1-8k",
                    "messages": STORY,
                    "temperature": 0,
                    "max_completion_tokens": 8000,
                },
                timeout=300,
            )

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            running = pool.submit(long_request)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # until the engine has it
                health = httpx.get(f"{server.base_url}/health", timeout=30).json()
                if health["engines"]["embedded"]["active_sequences"]:
                    break
                time.sleep(0.1)
            server.process.send_signal(signal.SIGTERM)
            response = running.result(timeout=240)
        assert response.status_code == 503, response.text
        assert response.headers["content-type"].startswith("application/json")
        assert response.headers["retry-after"] == "1"
        assert response.headers["x-request-id"]
        error = response.json()["error"]
        assert error["type"] == "server_error" and "shutting down" in error["message"]
        assert server.process.wait(timeout=120) is not None
    finally:
        server.stop()
