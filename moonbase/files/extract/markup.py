"""HTML pages and EPUB books (zipped XHTML in a spine), as plain text."""

from __future__ import annotations

import posixpath
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

from moonbase.files.extract import text as plain
from moonbase.files.extract.result import Extracted, ExtractionFailed

EPUB = "application/epub+zip"
_SKIPPED = {"script", "style", "noscript", "template", "head", "svg"}
_BLOCKS = {
    "p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section",
    "article", "header", "footer", "blockquote", "pre", "table", "ul", "ol", "hr",
}  # fmt: skip


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._skipping = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in _SKIPPED:
            self._skipping += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _SKIPPED:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> tuple[str, str]:
    """The visible text of a page and its <title>."""
    collector = _TextCollector()
    collector.feed(markup)
    collector.close()
    lines = (" ".join(line.split()) for line in "".join(collector.parts).splitlines())
    text = "\n".join(line for line in lines if line)
    return text, " ".join("".join(collector.title).split())


def extract_html(data: bytes, max_chars: int) -> Extracted:
    markup, _ = plain.decode(data)
    text, title = html_to_text(markup)
    return Extracted("text/html", text[:max_chars], title)


_OPF = "{http://www.idpf.org/2007/opf}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"


def is_epub(archive: zipfile.ZipFile) -> bool:
    try:
        return archive.read("mimetype").strip() == EPUB.encode()
    except KeyError:
        return False


def extract_epub(path: Path, max_chars: int) -> Extracted:
    try:
        with zipfile.ZipFile(path) as archive:
            container = ElementTree.fromstring(archive.read("META-INF/container.xml"))
            rootfile = container.find(f".//{_CONTAINER}rootfile")
            if rootfile is None:
                raise ExtractionFailed("the EPUB has no package document")
            opf_path = rootfile.attrib["full-path"]
            package = ElementTree.fromstring(archive.read(opf_path))
            base = posixpath.dirname(opf_path)
            manifest = {
                item.attrib["id"]: item.attrib["href"]
                for item in package.iter(f"{_OPF}item")
                if "id" in item.attrib and "href" in item.attrib
            }
            chapters: list[str] = []
            size = 0
            for itemref in package.iter(f"{_OPF}itemref"):
                href = manifest.get(itemref.attrib.get("idref", ""))
                if href is None:
                    continue
                member = posixpath.normpath(posixpath.join(base, href))
                chapter, _ = html_to_text(plain.decode(archive.read(member))[0])
                chapters.append(chapter)
                size += len(chapter)
                if size >= max_chars:
                    break
            title_node = package.find(f".//{_DC}title")
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError) as error:
        raise ExtractionFailed(f"the EPUB could not be read ({error}); it may be damaged") from None
    title = (title_node.text or "").strip() if title_node is not None else ""
    return Extracted(EPUB, "\n\n".join(chapters), title)
