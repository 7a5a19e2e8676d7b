"""Accumulates engine events into per-choice text, finish reasons and usage."""

from __future__ import annotations

from dataclasses import dataclass, field

from moonbase.chat.thinking import ChatEvent, ReasoningDelta
from moonbase.engines.base import (
    ChoiceFinished,
    FinishReason,
    PromptProcessed,
    TextDelta,
)
from moonbase.schemas.chat import PromptTokensDetails, Usage


@dataclass
class Tally:
    n: int
    prompt_tokens: int = 0
    cached_tokens: int = 0
    texts: dict[int, list[str]] = field(default_factory=dict)
    finish_reasons: dict[int, FinishReason] = field(default_factory=dict)
    completion_tokens: dict[int, int] = field(default_factory=dict)
    started: bool = False
    reasoning: dict[int, list[str]] = field(default_factory=dict)

    def add(self, event: ChatEvent) -> None:
        if isinstance(event, PromptProcessed):
            self.started = True
            self.prompt_tokens = event.prompt_tokens
            self.cached_tokens = event.cached_tokens
        elif isinstance(event, ReasoningDelta):
            self.reasoning.setdefault(event.index, []).append(event.text)
            self.completion_tokens[event.index] = (
                self.completion_tokens.get(event.index, 0) + event.tokens
            )
        elif isinstance(event, TextDelta):
            self.texts.setdefault(event.index, []).append(event.text)
            self.completion_tokens[event.index] = (
                self.completion_tokens.get(event.index, 0) + event.tokens
            )
        elif isinstance(event, ChoiceFinished):
            self.finish_reasons[event.index] = event.finish_reason
            self.completion_tokens[event.index] = event.completion_tokens

    @property
    def finished(self) -> bool:
        return len(self.finish_reasons) == self.n

    def text(self, index: int) -> str:
        return "".join(self.texts.get(index, ()))

    def reasoning_text(self, index: int) -> str | None:
        parts = self.reasoning.get(index)
        return "".join(parts) if parts is not None else None

    def usage(self) -> Usage:
        completion = sum(self.completion_tokens.values())
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=completion,
            total_tokens=self.prompt_tokens + completion,
            cached_tokens=self.cached_tokens,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=self.cached_tokens),
        )
