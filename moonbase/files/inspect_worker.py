"""The child process that reads an upload: ``python -m moonbase.files.inspect_worker``.

Parsers of untrusted PDFs, Office files, images and videos are native code:
they can hang, blow up memory or crash. Running them here, under an address
space limit and killed at the parent's deadline, keeps the server safe and
lets every upload end in a definite state. The result is written as JSON to
the output path given (stdout is left to whatever the libraries print).
"""

from __future__ import annotations

import argparse
import json
import resource
from pathlib import Path
from typing import Any

from moonbase.files.extract.result import ExtractionFailed
from moonbase.files.media import NotMedia


def inspect(purpose: str, source: Path, filename: str, max_chars: int, ocr: str) -> dict[str, Any]:
    if purpose == "file-extract":
        from moonbase.files.extract.document import extract

        try:
            document = extract(source, filename, max_chars, ocr)
        except ExtractionFailed as error:
            return {"status": "error", "details": str(error)}
        return {
            "status": "ready",
            "details": "; ".join(document.warnings) or None,
            "content_type": document.content_type,
            "text": document.text,
            "title": document.title,
        }
    from moonbase.files import media

    probe = media.probe_image if purpose == "image" else media.probe_video
    try:
        found = probe(source)
    except NotMedia as error:
        return {"status": "refused", "details": str(error)}
    return {
        "status": "ready",
        "content_type": found.content_type,
        "width": found.width,
        "height": found.height,
        "duration_ms": found.duration_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--purpose", required=True, choices=["file-extract", "image", "video"])
    parser.add_argument("--max-chars", type=int, required=True)
    parser.add_argument("--ocr-languages", required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("source", type=Path)
    parser.add_argument("filename")
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    limit = args.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        result = inspect(
            args.purpose, args.source, args.filename, args.max_chars, args.ocr_languages
        )
    except MemoryError:
        result = {"status": "error", "details": "the file needs more memory to read than allowed"}
    args.output.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
