"""``moonbase batch submit``: upload a .jsonl, create the batch, follow it, fetch results.

A client of any moonbase (or Moonshot) endpoint over HTTP, so it works
against a remote deployment as well as a local one.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

FINAL = {"completed", "failed", "expired", "cancelled"}


class BatchClient:
    def __init__(self, base_url: str, api_key: str, timeout: float = 600) -> None:
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )

    def _check(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text
            raise RuntimeError(f"HTTP {response.status_code}: {message}")
        return dict(response.json())

    def submit(self, path: Path, window: str) -> dict[str, Any]:
        with path.open("rb") as handle:
            uploaded = self._check(
                self.http.post(
                    "/files", files={"file": (path.name, handle)}, data={"purpose": "batch"}
                )
            )
        return self._check(
            self.http.post(
                "/batches",
                json={
                    "input_file_id": uploaded["id"],
                    "endpoint": "/v1/chat/completions",
                    "completion_window": window,
                },
            )
        )

    def get(self, batch_id: str) -> dict[str, Any]:
        return self._check(self.http.get(f"/batches/{batch_id}"))

    def wait(self, batch_id: str, poll_s: float = 1.0) -> dict[str, Any]:
        """Follow the batch with a progress bar until it ends."""
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns) as progress:
            task = progress.add_task("validating", total=None)
            while True:
                batch = self.get(batch_id)
                counts = batch["request_counts"]
                done = counts["completed"] + counts["failed"]
                progress.update(
                    task,
                    description=f"{batch['status']} ({counts['failed']} failed)",
                    total=counts["total"] or None,
                    completed=done,
                )
                if batch["status"] in FINAL:
                    return batch
                time.sleep(poll_s)

    def download(self, file_id: str, target: Path) -> Path:
        with self.http.stream("GET", f"/files/{file_id}/content") as response:
            response.raise_for_status()
            with target.open("wb") as handle:
                for chunk in response.iter_bytes():
                    handle.write(chunk)
        return target
