"""What an extractor returns, and the one error it raises."""

from __future__ import annotations

from dataclasses import dataclass, field


class ExtractionFailed(Exception):
    """The file cannot be read; the message is shown to the user as status_details."""


@dataclass
class Extracted:
    content_type: str
    text: str
    title: str = ""
    warnings: list[str] = field(default_factory=list)
