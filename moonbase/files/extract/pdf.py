"""PDF text through PDFium (pypdfium2): fast, and faithful with CJK fonts.

Pages without a text layer (scans) are rendered and read by OCR, up to a
page budget, so a scanned contract still yields its words.
"""

from __future__ import annotations

from pathlib import Path

import pypdfium2 as pdfium

from moonbase.files.extract import ocr
from moonbase.files.extract.result import Extracted, ExtractionFailed

# Scanned pages are slow to read (about a second each); past this many the
# rest are skipped with a warning.
MAX_OCR_PAGES = 20
OCR_RENDER_SCALE = 2.0  # 144 dpi: enough for body text


def extract(path: Path, max_chars: int, ocr_languages: str) -> Extracted:
    try:
        document = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as error:
        if "password" in str(error).lower():
            raise ExtractionFailed(
                "the PDF is encrypted with a password; upload an unprotected copy"
            ) from None
        raise ExtractionFailed(f"the PDF could not be read ({error}); it may be damaged") from None
    warnings: list[str] = []
    pages: list[str] = []
    size = 0
    ocr_pages = 0
    try:
        title = (document.get_metadata_dict().get("Title") or "").strip()
        for index in range(len(document)):
            page = document[index]
            text = page.get_textpage().get_text_range().replace("\r\n", "\n").strip()
            if not text:
                if ocr_pages < MAX_OCR_PAGES:
                    ocr_pages += 1
                    image = page.render(scale=OCR_RENDER_SCALE).to_pil()
                    text = ocr.read_image(image, ocr_languages).strip()
                elif ocr_pages == MAX_OCR_PAGES:
                    ocr_pages += 1
                    warnings.append(
                        f"only the first {MAX_OCR_PAGES} pages without a text layer "
                        "were read by OCR"
                    )
            pages.append(text)
            size += len(text)
            if size >= max_chars:
                break
    finally:
        document.close()
    return Extracted("application/pdf", "\n\n".join(pages), title, warnings)
