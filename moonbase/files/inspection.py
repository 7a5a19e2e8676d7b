"""Run the inspection child process for one upload, within its time budget."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from moonbase.settings import FilesSettings

log = logging.getLogger(__name__)


@dataclass
class Inspection:
    """What the child process found. ``status``: ready, error, or refused (not stored)."""

    status: str
    details: str | None = None
    content_type: str = "application/octet-stream"
    text: str | None = None
    title: str = ""
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None


async def inspect_upload(
    purpose: str, source: Path, filename: str, settings: FilesSettings
) -> Inspection:
    with tempfile.TemporaryDirectory(prefix="moonbase-inspect-") as folder:
        output = Path(folder) / "result.json"
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "moonbase.files.inspect_worker",
            "--purpose",
            purpose,
            "--max-chars",
            str(settings.max_extracted_chars),
            "--ocr-languages",
            settings.ocr_languages,
            "--memory-mb",
            str(settings.inspect_memory_mb),
            "--",  # what follows is never an option, whatever the filename
            str(source),
            filename,
            str(output),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            cwd=folder,
        )
        try:
            _, stderr = await asyncio.wait_for(
                process.communicate(), timeout=settings.inspect_timeout_s
            )
        except TimeoutError:
            process.kill()
            await process.wait()
            return _failed(
                purpose, f"reading the file took longer than {settings.inspect_timeout_s:g} s"
            )
        except asyncio.CancelledError:
            process.kill()
            await process.wait()
            raise
        if process.returncode != 0 or not output.exists():
            log.warning(
                "inspection of %s exited with %s: %s",
                filename,
                process.returncode,
                stderr.decode(errors="replace")[-2000:],
            )
            return _failed(purpose, "the file could not be read; it may be damaged")
        return Inspection(**json.loads(output.read_text(encoding="utf-8")))


def _failed(purpose: str, details: str) -> Inspection:
    # An image or video that cannot be proved to be one is refused outright;
    # a document that cannot be read is kept, with the reason, as status error.
    return Inspection(
        status="refused" if purpose in {"image", "video"} else "error", details=details
    )
