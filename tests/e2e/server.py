"""Start a real ``moonbase serve`` on loopback, as a user would, and stop it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai

KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9]{48})\b")
# A request's whole time, on a 2-core machine busy with other work: the SDK's
# default (600 s) cut a forced tool call at 601 of its 1,024 tokens while
# stress-ng ran beside the tests (8 concurrent streams, ~1 token/s each).
CLIENT_TIMEOUT_S = 3600.0


def openai_client(base_url: str, api_key: str) -> openai.OpenAI:
    """The SDK as the tests use it: no retries (a failure shows), a generous timeout."""
    return openai.OpenAI(
        base_url=base_url, api_key=api_key, max_retries=0, timeout=CLIENT_TIMEOUT_S
    )


def async_openai_client(base_url: str, api_key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=base_url, api_key=api_key, max_retries=0, timeout=CLIENT_TIMEOUT_S
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    process: subprocess.Popen[str]
    base_url: str
    api_key: str
    data_dir: Path
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_healthy(base_url: str, process: subprocess.Popen, timeout: float = 120) -> bool:
    """Poll /health until it answers 200; False if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


def start_server(
    data_dir: Path, extra_env: dict[str, str] | None = None, api_key: str | None = None
) -> RunningServer:
    """Start ``moonbase serve``; without ``api_key``, read the first key it prints."""
    port = free_port()
    log_path = data_dir / "server.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MOONBASE_LOG_LEVEL": "warning", **(extra_env or {})}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "moonbase",
            "serve",
            "--data-dir",
            str(data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    base_url = f"http://127.0.0.1:{port}"
    if not wait_healthy(base_url, process):
        process.kill()
        raise RuntimeError(f"moonbase did not come up:\n{log_path.read_text()}")
    if api_key is None:
        match = KEY_PATTERN.search(log_path.read_text())
        if match is None:
            process.kill()
            raise RuntimeError("the first API key was not printed")
        api_key = match.group(1)
    return RunningServer(process, base_url, api_key, data_dir, log_path)
