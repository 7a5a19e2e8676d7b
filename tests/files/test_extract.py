"""Extraction of every supported format, from real files written by their own libraries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moonbase.files.extract.document import extract
from moonbase.files.extract.result import ExtractionFailed
from tests.files import documents
from tests.files.documents import CHINESE, ENGLISH

OCR = "chi_sim+eng"
MAX = 1_000_000


def run(path: Path, filename: str | None = None, max_chars: int = MAX):
    return extract(path, filename or path.name, max_chars, OCR)


def test_pdf_keeps_cjk_text_and_title(tmp_path: Path) -> None:
    path = documents.pdf(tmp_path / "report.pdf", [f"{ENGLISH}\n{CHINESE}", "第二页 page two"])
    result = run(path)
    assert result.content_type == "application/pdf"
    assert ENGLISH in result.text
    assert CHINESE in result.text
    assert "第二页" in result.text
    assert result.title == "Quarterly report"


def test_encrypted_pdf_is_a_clear_error(tmp_path: Path) -> None:
    path = documents.pdf(tmp_path / "secret.pdf", ["classified"], password="s3cret")
    with pytest.raises(ExtractionFailed, match="encrypted"):
        run(path)


def test_truncated_pdf_is_a_clear_error(tmp_path: Path) -> None:
    whole = documents.pdf(tmp_path / "whole.pdf", ["text"]).read_bytes()
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(whole[: len(whole) // 3])
    with pytest.raises(ExtractionFailed, match="damaged"):
        run(broken)


@pytest.mark.parametrize("make", [documents.docx, documents.xlsx, documents.pptx])
def test_encrypted_office_documents_are_a_clear_error(tmp_path: Path, make) -> None:
    plain = make(tmp_path / "plain")
    locked = documents.encrypted(tmp_path / "locked", plain)
    with pytest.raises(ExtractionFailed, match="encrypted with a password"):
        run(locked, "locked.docx")


def test_docx_paragraphs_and_tables_in_order(tmp_path: Path) -> None:
    result = run(documents.docx(tmp_path / "a.docx"))
    assert result.content_type.endswith("wordprocessingml.document")
    assert result.text.index(ENGLISH) < result.text.index(CHINESE) < result.text.index("华东")
    assert "1234" in result.text
    assert result.title == "Docx title"


def test_xlsx_sheets_and_cells(tmp_path: Path) -> None:
    result = run(documents.xlsx(tmp_path / "a.xlsx"))
    assert "## 销售" in result.text
    assert "北京\t42" in result.text


def test_pptx_slides_and_notes(tmp_path: Path) -> None:
    result = run(documents.pptx(tmp_path / "a.pptx"))
    assert "Roadmap" in result.text
    assert CHINESE in result.text
    assert "speaker notes here" in result.text


def test_epub_chapters_in_spine_order(tmp_path: Path) -> None:
    result = run(documents.epub(tmp_path / "book.epub"))
    assert result.content_type == "application/epub+zip"
    assert result.title == "三体"
    assert result.text.index(CHINESE) < result.text.index(ENGLISH)


@pytest.mark.parametrize("encoding", ["utf-8", "gbk", "gb18030", "utf-16"])
def test_text_in_chinese_encodings(tmp_path: Path, encoding: str) -> None:
    text = f"{CHINESE}，今天天气很好。\nplain ascii line\n"
    path = tmp_path / "notes.txt"
    path.write_bytes(text.encode(encoding))
    result = run(path)
    assert result.content_type == "text/plain"
    assert CHINESE in result.text
    assert "plain ascii line" in result.text


def test_latin1_text_is_not_read_as_chinese(tmp_path: Path) -> None:
    path = tmp_path / "menu.txt"
    path.write_bytes("Crème brûlée and café au lait, déjà vu.\n".encode("latin-1"))
    # Single-byte Western code pages are ambiguous on so little text (cp1250 or
    # latin-1); what matters is that it is not mistaken for Chinese.
    text = run(path).text
    assert "café au lait" in text
    assert not any("\u4e00" <= char <= "\u9fff" for char in text)


@pytest.mark.parametrize(
    ("name", "body", "content_type"),
    [
        ("readme.md", "# Title\n\n- item one\n", "text/markdown"),
        ("table.csv", "name,score\n张三,90\n", "text/csv"),
        ("data.json", json.dumps({"key": "值"}, ensure_ascii=False), "application/json"),
        ("main.py", "def hello():\n    return 'hi'\n", "text/plain"),
        ("server.log", "2026-11-25 12:00:00 ERROR disk full\n", "text/plain"),
    ],
)
def test_text_formats(tmp_path: Path, name: str, body: str, content_type: str) -> None:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    result = run(path)
    assert result.content_type == content_type
    assert result.text == body.replace("\r\n", "\n")


def test_html_visible_text_only(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        "<!DOCTYPE html><html><head><title>新闻</title><style>p{color:red}</style>"
        "<script>var secret = 1;</script></head><body><h1>Headline</h1>"
        f"<p>{CHINESE}</p><p>second&nbsp;para &amp; more</p></body></html>",
        encoding="utf-8",
    )
    result = run(path)
    assert result.content_type == "text/html"
    assert result.title == "新闻"
    assert "Headline" in result.text and CHINESE in result.text
    assert "second para & more" in result.text
    assert "secret" not in result.text and "color" not in result.text


def test_image_goes_through_ocr(tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    path.write_bytes(documents.scanned_image())
    result = run(path)
    assert result.content_type == "image/png"
    assert "quarterly revenue" in result.text.lower()


def test_binary_and_legacy_formats_are_clear_errors(tmp_path: Path) -> None:
    blob = tmp_path / "program.bin"
    blob.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ExtractionFailed, match="binary"):
        run(blob)
    legacy = tmp_path / "old.doc"
    legacy.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 1024)
    with pytest.raises(ExtractionFailed, match="legacy Office"):
        run(legacy)


def test_text_is_cut_at_the_budget_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "long.txt"
    path.write_text("长" * 5000, encoding="utf-8")
    result = run(path, max_chars=1000)
    assert result.text == "长" * 1000
    assert "cut at 1,000 characters" in result.warnings[0]
