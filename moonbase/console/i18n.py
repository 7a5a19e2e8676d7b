"""Languages: which one a visitor reads (their cookie, else ``Accept-Language``),
and a ``Translator`` that turns catalogue keys (``messages.py``) into text and
formats numbers, money and dates the way that language writes them.

Formats are written here for the two languages the console speaks rather than
taken from a locale library: CLDR's patterns for ``en`` and ``zh-Hans`` are
short (grouping by thousands in both; ``Dec 3, 2025`` against
``2025年12月3日``; compact numbers by thousands against 万 and 亿).
Times are shown in UTC, the days usage is counted in.
"""

from __future__ import annotations

import datetime as dt
import string
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from moonbase.console.messages import MESSAGES

LANGUAGES = ("en", "zh-CN")
DEFAULT = "en"
LANGUAGE_NAMES = {"en": "English", "zh-CN": "简体中文"}
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def language_from(cookie: str | None, accept_language: str | None) -> str:
    """The cookie's language if it is one we speak; else the first language of
    ``Accept-Language`` (by q) that is; else English. Any Chinese but
    Traditional (zh-TW, zh-HK, zh-Hant) reads Simplified Chinese."""
    if cookie in LANGUAGES:
        return cookie
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "")[:1000].split(",")[:32]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        ranked.append((-q, index, tag.strip().lower()))
    for minus_q, _, tag in sorted(ranked):
        if minus_q >= 0:
            break
        if tag.startswith("zh") and not any(t in tag for t in ("tw", "hk", "mo", "hant")):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT


def _group(digits: str) -> str:
    out = []
    for i, ch in enumerate(reversed(digits)):
        if i and i % 3 == 0:
            out.append(",")
        out.append(ch)
    return "".join(reversed(out))


@dataclass(frozen=True)
class Translator:
    """Text and formats for one language; templates call it as ``t(...)``."""

    language: str

    def __call__(self, key: str, **values: object) -> str:
        entry = MESSAGES.get(key)
        if entry is None:  # a test keeps this from happening; show the key, not a 500
            return key
        text = entry[1] if self.language == "zh-CN" else entry[0]
        return text.format(**values) if values else text

    @property
    def html_lang(self) -> str:
        return "zh-Hans" if self.language == "zh-CN" else "en"

    def number(self, value: int | float | Decimal, places: int = 0) -> str:
        quantum = Decimal(1).scaleb(-places)
        fixed = Decimal(str(value)).quantize(quantum, rounding=ROUND_HALF_UP)
        sign = "-" if fixed < 0 else ""
        whole, _, fraction = f"{abs(fixed):f}".partition(".")
        return sign + _group(whole) + (f".{fraction}" if fraction else "")

    def money(self, yuan: int | float | Decimal) -> str:
        """Yuan with two decimals: ¥1,234.50 (-¥3.20 in arrears) in both languages;
        an amount under a fen shows its own digits (¥0.000066), not ¥0.00."""
        text = self.number(yuan, 2)
        if yuan and text.lstrip("-") == "0.00":
            text = self.number(yuan, 6).rstrip("0")
        return f"-¥{text[1:]}" if text.startswith("-") else f"¥{text}"

    def compact(self, value: int | float) -> str:
        """A count for a chart's axis or a card: 1.2M / 120万."""
        n = float(value)
        steps = (
            ((1e8, "亿"), (1e4, "万"))
            if self.language == "zh-CN"
            else ((1e9, "B"), (1e6, "M"), (1e3, "K"))
        )
        for size, suffix in steps:
            if abs(n) >= size:
                return f"{n / size:.1f}".rstrip("0").rstrip(".") + suffix
        return self.number(value)

    def date(self, day: dt.date | int | None) -> str:
        if day is None:
            return self("common.never")
        if isinstance(day, int):  # unix seconds, as the wire models carry times
            day = dt.datetime.fromtimestamp(day, dt.UTC)
        if isinstance(day, dt.datetime):
            day = (day if day.tzinfo else day.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).date()
        if self.language == "zh-CN":
            return f"{day.year}年{day.month}月{day.day}日"
        return f"{_MONTHS_EN[day.month - 1]} {day.day}, {day.year}"

    def short_date(self, day: dt.date) -> str:
        """A chart's tick: Dec 3 / 12月3日."""
        if self.language == "zh-CN":
            return f"{day.month}月{day.day}日"
        return f"{_MONTHS_EN[day.month - 1]} {day.day}"

    def datetime(self, moment: dt.datetime | int | None) -> str:
        if moment is None:
            return self("common.never")
        if isinstance(moment, int):
            moment = dt.datetime.fromtimestamp(moment, dt.UTC)
        moment = (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
        clock = f"{moment.hour:02d}:{moment.minute:02d} UTC"
        if self.language == "zh-CN":
            return f"{self.date(moment)} {clock}"
        return f"{self.date(moment)}, {clock}"


def placeholders(text: str) -> set[str]:
    """The ``{names}`` a message takes (both languages must take the same)."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}
