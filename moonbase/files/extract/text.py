"""Plain text in whatever encoding it came: UTF-8/16, GBK/GB18030, and the rest.

Most of the platform's users write Chinese, and Windows tools still save
Chinese text as GBK. charset-normalizer alone mislabels short GBK text (as
Big5 or a Cyrillic code page), so GB18030 -- a superset of GBK and GB2312 --
is tried first when the bytes decode under it and read as mostly CJK.
"""

from __future__ import annotations

import codecs
import unicodedata

from charset_normalizer import from_bytes

from moonbase.files.extract.result import ExtractionFailed

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Share of the non-ASCII characters that must be CJK for a GB18030 reading to win.
_CJK_SHARE = 0.8


def _is_cjk(char: str) -> bool:
    return "CJK" in unicodedata.name(char, "") or "\u3000" <= char <= "\u303f"


def _reads_as_chinese(text: str) -> bool:
    wide = [char for char in text if ord(char) > 0x7F]
    if not wide:
        return False
    return sum(map(_is_cjk, wide)) / len(wide) >= _CJK_SHARE


def looks_binary(sample: bytes) -> bool:
    return b"\x00" in sample and not any(sample.startswith(bom) for bom, _ in _BOMS)


def decode(data: bytes) -> tuple[str, str]:
    """The text and the encoding it was read with; ExtractionFailed for binary data."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace"), encoding.removesuffix("-sig")
    if looks_binary(data[:8192]):
        raise ExtractionFailed("the file is binary, not text, and its format is not supported")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as error:
        # A file cut at the size budget may end inside a character.
        if error.start >= len(data) - 3 and error.reason == "unexpected end of data":
            return data[: error.start].decode("utf-8"), "utf-8"
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        text = ""
    if text and _reads_as_chinese(text):
        return text, "gb18030"
    best = from_bytes(data).best()
    if best is None:
        raise ExtractionFailed("the file's text encoding could not be recognised")
    return str(best), best.encoding
