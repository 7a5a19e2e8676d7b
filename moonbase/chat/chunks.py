"""``chat.completion.chunk`` objects, in the order the openai SDK expects.

A role chunk per choice first, then content deltas, then one chunk per
choice with its finish_reason (the last of them also carries ``usage`` on the
choice, where Kimi clients read it), then, with ``include_usage``, a chunk
with empty choices and the total usage. With ``include_usage`` every other
chunk has ``"usage": null``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moonbase.schemas.chat import Usage


@dataclass(frozen=True)
class ChunkFactory:
    completion_id: str
    created: int
    model: str
    include_usage: bool

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def role(self, index: int) -> dict[str, Any]:
        return self._chunk(
            [
                {
                    "index": index,
                    "delta": {"role": "assistant", "content": ""},
                    "finish_reason": None,
                }
            ]
        )

    def reasoning(self, index: int, text: str) -> dict[str, Any]:
        delta = {"reasoning_content": text}
        return self._chunk([{"index": index, "delta": delta, "finish_reason": None}])

    def content(self, index: int, text: str) -> dict[str, Any]:
        return self._chunk([{"index": index, "delta": {"content": text}, "finish_reason": None}])

    def tool_calls(self, index: int, calls: list[dict[str, Any]], first: int = 0) -> dict[str, Any]:
        """Calls of a choice in one delta, each whole, with its position among
        the choice's calls (``first`` for the first of these)."""
        deltas = [{"index": first + i, **call} for i, call in enumerate(calls)]
        return self._chunk(
            [{"index": index, "delta": {"tool_calls": deltas}, "finish_reason": None}]
        )

    def finish(self, index: int, finish_reason: str, usage: Usage | None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": index, "delta": {}, "finish_reason": finish_reason}
        if usage is not None:
            choice["usage"] = usage.model_dump()
        return self._chunk([choice])

    def usage(self, usage: Usage) -> dict[str, Any]:
        chunk = self._chunk([])
        chunk["usage"] = usage.model_dump()
        return chunk
