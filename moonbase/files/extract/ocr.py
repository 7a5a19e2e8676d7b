"""OCR with Tesseract 5 (Debian's tesseract-ocr, English and Simplified Chinese)."""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

from PIL import Image

from moonbase.files.extract.result import ExtractionFailed

OCR_TIMEOUT_S = 60
# Tesseract reads small text poorly; smaller images are scaled up to this width.
MIN_WIDTH = 1000


@functools.cache
def installed_languages() -> frozenset[str]:
    binary = shutil.which("tesseract")
    if binary is None:
        return frozenset()
    listing = subprocess.run(
        [binary, "--list-langs"], capture_output=True, text=True, timeout=30, check=False
    )
    return frozenset(line.strip() for line in listing.stdout.splitlines()[1:] if line.strip())


def read_image(image: Image.Image, languages: str) -> str:
    """The text in ``image``; ExtractionFailed when no OCR engine is installed."""
    available = installed_languages()
    if not available:
        raise ExtractionFailed(
            "reading text from images needs Tesseract OCR, which is not installed on this "
            "server (Debian: apt-get install tesseract-ocr tesseract-ocr-chi-sim)"
        )
    wanted = [lang for lang in languages.split("+") if lang in available]
    if not wanted:
        raise ExtractionFailed(f"none of the OCR languages {languages!r} is installed")
    image = image.convert("L")
    if image.width < MIN_WIDTH:
        scale = MIN_WIDTH / image.width
        image = image.resize((MIN_WIDTH, max(1, round(image.height * scale))))
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "page.png"
        image.save(source)
        try:
            result = subprocess.run(
                ["tesseract", str(source), "stdout", "-l", "+".join(wanted)],
                capture_output=True,
                timeout=OCR_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ExtractionFailed("OCR took too long on this image") from None
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise ExtractionFailed(f"OCR failed: {' '.join(message) or 'unknown error'}")
    return _join_cjk(result.stdout.decode("utf-8", errors="replace"))


def _join_cjk(text: str) -> str:
    """Tesseract puts a space between CJK characters; Chinese text has none."""
    out: list[str] = []
    for index, char in enumerate(text):
        if char == " " and 0 < index < len(text) - 1:
            before, after = text[index - 1], text[index + 1]
            if _wide(before) and _wide(after):
                continue
        out.append(char)
    return "".join(out).strip()


def _wide(char: str) -> bool:
    return "\u2e80" <= char <= "\u9fff" or "\uff00" <= char <= "\uffef"
