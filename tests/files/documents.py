"""Real documents of every supported format, written by the libraries that make them."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

CHINESE = "月之暗面的长文本模型"
ENGLISH = "The quarterly revenue grew by forty two percent"


def pdf(path: Path, pages: list[str], *, password: str | None = None) -> Path:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    sheet = canvas.Canvas(str(path), pagesize=A4, encrypt=password)
    sheet.setTitle("Quarterly report")
    for text in pages:
        sheet.setFont("STSong-Light", 14)
        for number, line in enumerate(text.splitlines()):
            sheet.drawString(72, 770 - 20 * number, line)
        sheet.showPage()
    sheet.save()
    return path


def docx(path: Path) -> Path:
    import docx as python_docx

    document = python_docx.Document()
    document.core_properties.title = "Docx title"
    document.add_heading("Report", level=1)
    document.add_paragraph(ENGLISH)
    document.add_paragraph(CHINESE)
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "region"
    table.cell(0, 1).text = "sales"
    table.cell(1, 0).text = "华东"
    table.cell(1, 1).text = "1234"
    document.save(str(path))
    return path


def xlsx(path: Path, rows: int = 3) -> Path:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "销售"
    sheet.append(["city", "amount"])
    sheet.append(["北京", 42])
    for index in range(rows - 2):
        sheet.append([f"row-{index}", index * 3])
    workbook.save(str(path))
    return path


def pptx(path: Path) -> Path:
    import pptx as python_pptx

    presentation = python_pptx.Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[1])
    slide.shapes.title.text = "Roadmap"
    slide.placeholders[1].text = CHINESE
    slide.notes_slide.notes_text_frame.text = "speaker notes here"
    presentation.save(str(path))
    return path


def epub(path: Path) -> Path:
    container = (
        '<?xml version="1.0"?><container version="1.0" '
        'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
        '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
        "</rootfiles></container>"
    )
    opf = (
        '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>三体</dc:title>'
        "</metadata><manifest>"
        '<item id="c1" href="chapter1.xhtml" media-type="application/xhtml+xml"/>'
        '<item id="c2" href="text/chapter2.xhtml" media-type="application/xhtml+xml"/>'
        '</manifest><spine><itemref idref="c1"/><itemref idref="c2"/></spine></package>'
    )

    def chapter(body: str) -> str:
        return f'<html xmlns="http://www.w3.org/1999/xhtml"><body><p>{body}</p></body></html>'

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        archive.writestr("META-INF/container.xml", container)
        archive.writestr("OEBPS/content.opf", opf)
        archive.writestr("OEBPS/chapter1.xhtml", chapter("第一章 " + CHINESE))
        archive.writestr("OEBPS/text/chapter2.xhtml", chapter("Chapter two: " + ENGLISH))
    return path


def scanned_image(text: str = ENGLISH, image_format: str = "PNG") -> bytes:
    """A 'scan': black text on white, as a photo of a page would show it."""
    try:
        font: ImageFont.FreeTypeFont | ImageFont.ImageFont = ImageFont.truetype(
            "DejaVuSans.ttf", 36
        )
    except OSError:  # no DejaVu on this machine: Pillow's own scalable font
        font = ImageFont.load_default(size=36)
    image = Image.new("RGB", (1400, 200), "white")
    ImageDraw.Draw(image).text((40, 70), text, fill="black", font=font)
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def png(width: int = 64, height: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def mp4(path: Path, frames: int = 24, fps: int = 12) -> Path:
    """A real H.264 (or MPEG-4 part 2) video: ``frames / fps`` seconds of 64x48 colour."""
    import av

    with av.open(str(path), "w", format="mp4") as container:
        try:
            stream = container.add_stream("libx264", rate=fps)
        except Exception:
            stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(frames):
            image = Image.new("RGB", (64, 48), (index * 10 % 255, 80, 160))
            frame = av.VideoFrame.from_image(image)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def encrypted(path: Path, source: Path, password: str = "s3cret") -> Path:
    """``source`` (a docx, xlsx or pptx) encrypted the way Office does it."""
    import msoffcrypto

    with source.open("rb") as plain, path.open("wb") as locked:
        msoffcrypto.OfficeFile(plain).encrypt(password, locked)
    return path
