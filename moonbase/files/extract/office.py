"""Office Open XML documents: Word (python-docx), Excel (openpyxl), PowerPoint (python-pptx)."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from moonbase.files.extract.result import Extracted, ExtractionFailed

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"


def kind_of(archive: zipfile.ZipFile) -> str | None:
    """Which Office format a zip holds, from its parts (never from the filename)."""
    names = set(archive.namelist())
    if "[Content_Types].xml" not in names:
        return None
    if "word/document.xml" in names:
        return DOCX
    if "xl/workbook.xml" in names:
        return XLSX
    if "ppt/presentation.xml" in names:
        return PPTX
    return None


def _unreadable(error: Exception) -> ExtractionFailed:
    return ExtractionFailed(f"the document could not be read ({error}); it may be damaged")


def extract_docx(path: Path, max_chars: int) -> Extracted:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(str(path))
    except Exception as error:
        raise _unreadable(error) from None
    lines: list[str] = []
    size = 0
    # Paragraphs and tables in document order, as a reader sees them.
    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            text = block.text
        elif isinstance(block, Table):
            text = "\n".join(_table_rows(block))
        else:  # pragma: no cover - python-docx yields only the two
            continue
        lines.append(text)
        size += len(text)
        if size >= max_chars:
            break
    title = (document.core_properties.title or "").strip()
    return Extracted(DOCX, "\n".join(lines).strip(), title)


def _table_rows(table: Any) -> Iterator[str]:
    for row in table.rows:
        yield "\t".join(cell.text.strip() for cell in row.cells)


def extract_xlsx(path: Path, max_chars: int) -> Extracted:
    import openpyxl

    try:
        # read_only streams rows; data_only gives cached values, not formulas. A
        # file object, because openpyxl judges a path by its extension and the
        # spooled upload has none.
        workbook = openpyxl.load_workbook(path.open("rb"), read_only=True, data_only=True)
    except Exception as error:
        raise _unreadable(error) from None
    lines: list[str] = []
    size = 0
    try:
        for sheet in workbook.worksheets:
            lines.append(f"## {sheet.title}")
            for row in sheet.iter_rows(values_only=True):
                cells = ["" if value is None else str(value) for value in row]
                while cells and not cells[-1]:
                    cells.pop()
                if not cells:
                    continue
                line = "\t".join(cells)
                lines.append(line)
                size += len(line)
                if size >= max_chars:
                    break
            lines.append("")
        title = (workbook.properties.title or "").strip()
    finally:
        workbook.close()
    return Extracted(XLSX, "\n".join(lines).strip(), title)


def extract_pptx(path: Path, max_chars: int) -> Extracted:
    import pptx

    try:
        presentation = pptx.Presentation(str(path))
    except Exception as error:
        raise _unreadable(error) from None
    lines: list[str] = []
    size = 0
    for number, slide in enumerate(presentation.slides, start=1):
        lines.append(f"## Slide {number}")
        for shape in slide.shapes:
            if shape.has_text_frame:
                lines.append(shape.text_frame.text)
            if getattr(shape, "has_table", False):
                lines.extend(_table_rows(shape.table))
        if slide.has_notes_slide:
            notes = slide.notes_slide.notes_text_frame
            if notes is not None and notes.text.strip():
                lines.append(f"Notes: {notes.text}")
        lines.append("")
        size = sum(map(len, lines))
        if size >= max_chars:
            break
    title = (presentation.core_properties.title or "").strip()
    return Extracted(PPTX, "\n".join(lines).strip(), title)
