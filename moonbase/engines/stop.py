"""Incremental stop-string matching for streamed text.

Text is released only once it can no longer be the start of a stop string, so
a stop string that arrives split across tokens is never partly sent, and the
stop string itself is never returned.
"""

from __future__ import annotations

import codecs


class StopMatcher:
    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._pending = ""
        self.stopped = False
        self.matched: str | None = None  # the stop string that ended the text

    def feed(self, text: str) -> str:
        """Add generated text; return what can safely be released."""
        if self.stopped:
            return ""
        buffer = self._pending + text
        cut = self._first_match(buffer)
        # A longer stop string that began before ``cut`` may still complete and
        # win (stops "c" and "aca" over "a|ac|a"): hold from where it begins.
        hold_from = len(buffer) - self._longest_partial_suffix(buffer)
        if cut is not None and cut <= hold_from:
            self.stopped = True
            self._pending = ""
            return buffer[:cut]
        self._pending = buffer[hold_from:]
        return buffer[:hold_from]

    def flush(self) -> str:
        """Release what was held back: the generation ended."""
        if self.stopped:
            return ""
        released, self._pending = self._pending, ""
        cut = self._first_match(released)
        if cut is not None:  # a stop held back behind a longer partial one
            self.stopped = True
            return released[:cut]
        return released

    def _first_match(self, buffer: str) -> int | None:
        found = [(pos, stop) for stop in self._stops if (pos := buffer.find(stop)) >= 0]
        if not found:
            return None
        position, self.matched = min(found)
        return position

    def _longest_partial_suffix(self, buffer: str) -> int:
        """Length of the longest suffix of ``buffer`` that begins some stop string."""
        best = 0
        for stop in self._stops:
            for length in range(min(len(stop) - 1, len(buffer)), best, -1):
                if stop.startswith(buffer[-length:]):
                    best = length
                    break
        return best


class Utf8Stream:
    """Decodes token bytes into text, holding back an incomplete character."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def decode(self, data: bytes) -> str:
        return self._decoder.decode(data)

    def flush(self) -> str:
        """The end of the reply: a character its last tokens only began (cut
        by ``max_tokens``) is dropped, not sent as U+FFFD (vLLM drops it too)."""
        self._decoder.reset()
        return ""
