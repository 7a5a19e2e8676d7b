"""Sniff a document's format from its bytes and extract its text."""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError

from moonbase.files.extract import markup, ocr, office, pdf
from moonbase.files.extract import text as plain
from moonbase.files.extract.result import Extracted, ExtractionFailed

_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# Text flavours we name by extension once the bytes have proved to be text.
_TEXT_TYPES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".json": "application/json",
    ".jsonl": "application/jsonl",
    ".xml": "application/xml",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".log": "text/plain",
}
_HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
_HTML_STARTS = (b"<!doctype html", b"<html")


def extract(path: Path, filename: str, max_chars: int, ocr_languages: str) -> Extracted:
    with path.open("rb") as handle:
        head = handle.read(4096)
    suffix = PurePosixPath(filename.lower()).suffix
    if head.startswith(b"%PDF-"):
        result = pdf.extract(path, max_chars, ocr_languages)
    elif head.startswith(b"PK\x03\x04"):
        result = _extract_zip(path, max_chars)
    elif head.startswith(_OLE2):
        raise ExtractionFailed(_ole2_message(path))
    elif (image := _open_image(path)) is not None:
        with image:
            result = Extracted(Image.MIME.get(image.format or "", "image/*"), "")
            result.text = ocr.read_image(image, ocr_languages)
    else:
        result = _extract_text(path, suffix, head, max_chars)
    if len(result.text) > max_chars:
        result.text = result.text[:max_chars]
        result.warnings.append(f"the extracted text was cut at {max_chars:,} characters")
    return result


def _extract_zip(path: Path, max_chars: int) -> Extracted:
    try:
        with zipfile.ZipFile(path) as archive:
            kind = office.kind_of(archive)
            epub = markup.is_epub(archive)
    except zipfile.BadZipFile:
        raise ExtractionFailed("the zip container is damaged") from None
    if kind == office.DOCX:
        return office.extract_docx(path, max_chars)
    if kind == office.XLSX:
        return office.extract_xlsx(path, max_chars)
    if kind == office.PPTX:
        return office.extract_pptx(path, max_chars)
    if epub:
        return markup.extract_epub(path, max_chars)
    raise ExtractionFailed(
        "zip archives are not supported; upload the documents inside it one by one"
    )


def _ole2_message(path: Path) -> str:
    # Office encrypts a .docx/.xlsx/.pptx by wrapping it in an OLE2 file with
    # an "EncryptedPackage" stream (its name is stored in UTF-16).
    with path.open("rb") as handle:
        data = handle.read(1 << 20)
    if "EncryptedPackage".encode("utf-16-le") in data:
        return "the document is encrypted with a password; upload an unprotected copy"
    return (
        "legacy Office formats (.doc, .xls, .ppt) are not supported; "
        "save the file as .docx, .xlsx or .pptx and upload it again"
    )


def _open_image(path: Path) -> Image.Image | None:
    try:
        return Image.open(path)
    except (UnidentifiedImageError, OSError):
        return None


def _extract_text(path: Path, suffix: str, head: bytes, max_chars: int) -> Extracted:
    # Never more than 4 bytes a character are needed to fill the budget.
    with path.open("rb") as handle:
        data = handle.read(max_chars * 4)
    lowered = head.lstrip().lower()
    if suffix in _HTML_SUFFIXES or lowered.startswith(_HTML_STARTS):
        return markup.extract_html(data, max_chars)
    text, _encoding = plain.decode(data)
    content_type = _TEXT_TYPES.get(suffix, "text/plain")
    return Extracted(content_type, text.replace("\r\n", "\n"))
