"""Accumulates engine events into per-choice text, finish reasons and usage."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from moonbase.engines.base import (
    ChatEvent,
    ChoiceFinished,
    FinishReason,
    PromptProcessed,
    ReasoningDelta,
    TextDelta,
    ToolCallsMade,
    UsageReported,
)
from moonbase.schemas.chat import PromptTokensDetails, Usage


@dataclass
class Tally:
    n: int
    prompt_tokens: int = 0
    cached_tokens: int = 0
    texts: dict[int, list[str]] = field(default_factory=dict)
    finish_reasons: dict[int, FinishReason] = field(default_factory=dict)
    stop_sequences: dict[int, str] = field(default_factory=dict)  # the stop string that ended it
    completion_tokens: dict[int, int] = field(default_factory=dict)
    started: bool = False
    reasoning: dict[int, list[str]] = field(default_factory=dict)
    tool_calls: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    reported: UsageReported | None = None  # an upstream's own count wins
    first_text_at: float | None = None  # time.monotonic() of the first reasoning or text

    def add(self, event: ChatEvent) -> None:
        if isinstance(event, PromptProcessed):
            self.started = True
            self.prompt_tokens = event.prompt_tokens
            self.cached_tokens = event.cached_tokens
        elif isinstance(event, ReasoningDelta):
            self._first_text()
            self.reasoning.setdefault(event.index, []).append(event.text)
            self.completion_tokens[event.index] = (
                self.completion_tokens.get(event.index, 0) + event.tokens
            )
        elif isinstance(event, TextDelta):
            self._first_text()
            self.texts.setdefault(event.index, []).append(event.text)
            self.completion_tokens[event.index] = (
                self.completion_tokens.get(event.index, 0) + event.tokens
            )
        elif isinstance(event, ChoiceFinished):
            self.finish_reasons[event.index] = event.finish_reason
            if event.stop_sequence is not None:
                self.stop_sequences[event.index] = event.stop_sequence
            self.completion_tokens[event.index] = event.completion_tokens
        elif isinstance(event, ToolCallsMade):
            self.tool_calls.setdefault(event.index, []).extend(event.calls)
        elif isinstance(event, UsageReported):
            self.reported = event
            self.prompt_tokens = event.prompt_tokens
            self.cached_tokens = event.cached_tokens

    def _first_text(self) -> None:
        if self.first_text_at is None:
            self.first_text_at = time.monotonic()

    @property
    def finished(self) -> bool:
        return len(self.finish_reasons) == self.n

    def text(self, index: int) -> str:
        return "".join(self.texts.get(index, ()))

    def reasoning_text(self, index: int) -> str | None:
        parts = self.reasoning.get(index)
        return "".join(parts) if parts is not None else None

    @property
    def total_completion_tokens(self) -> int:
        if self.reported is not None:
            return self.reported.completion_tokens
        return sum(self.completion_tokens.values())

    def usage(self) -> Usage:
        completion = self.total_completion_tokens
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=completion,
            total_tokens=self.prompt_tokens + completion,
            cached_tokens=self.cached_tokens,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=self.cached_tokens),
        )
