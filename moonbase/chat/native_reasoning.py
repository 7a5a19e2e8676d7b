"""Reasoning written by the model itself, between ``<think>`` and ``</think>``.

Models that reason natively (Qwen3, DeepSeek-R1 distills, Kimi's own open
weights behind a raw engine) put their reasoning in the text. This splits a
stream of text deltas, per choice, into reasoning and answer as it flows:
text that might still be the start of a tag is held back, never sent half.
Some templates open the block in the prompt (the generation prompt ends with
``<think>``); then the output starts inside it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass

from moonbase.engines.base import ChatEvent, ChoiceFinished, EngineEvent, ReasoningDelta, TextDelta

OPEN, CLOSE = "<think>", "</think>"


@dataclass
class _Choice:
    state: str  # "undecided", "reasoning" or "answer"
    held: str = ""
    tokens: int = 0  # of text held back, reported with the next delta
    answer_started: bool = False


def _partial_tag_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for length in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-length:]):
            return length
    return 0


class ReasoningSplitter:
    def __init__(self, starts_open: bool = False, keep_reasoning: bool = True) -> None:
        self._starts_open = starts_open
        self._keep = keep_reasoning  # False: thinking is off, the reasoning is dropped
        self._choices: dict[int, _Choice] = {}

    def _choice(self, index: int) -> _Choice:
        if index not in self._choices:
            self._choices[index] = _Choice("reasoning" if self._starts_open else "undecided")
        return self._choices[index]

    def feed(self, delta: TextDelta) -> list[ChatEvent]:
        choice = self._choice(delta.index)
        choice.held += delta.text
        choice.tokens += delta.tokens
        return self._drain(delta.index, choice, final=False)

    def finish(self, finished: ChoiceFinished) -> list[ChatEvent]:
        choice = self._choice(finished.index)
        return [*self._drain(finished.index, choice, final=True), finished]

    def _drain(self, index: int, choice: _Choice, final: bool) -> list[ChatEvent]:
        out: list[ChatEvent] = []
        while True:
            if choice.state == "undecided":
                stripped = choice.held.lstrip()
                if stripped.startswith(OPEN):
                    choice.held = stripped[len(OPEN) :]
                    choice.state = "reasoning"
                elif OPEN.startswith(stripped) and not final:
                    return out  # maybe the start of <think>: wait for more
                else:
                    choice.state = "answer"
                continue
            if choice.state == "reasoning":
                end = choice.held.find(CLOSE)
                if end >= 0:
                    out += self._emit(index, choice, choice.held[:end], reasoning=True)
                    choice.held = choice.held[end + len(CLOSE) :]
                    choice.state = "answer"
                    continue
                keep = 0 if final else _partial_tag_suffix(choice.held, CLOSE)
                ready = choice.held[: len(choice.held) - keep]
                choice.held = choice.held[len(ready) :]
                return out + self._emit(index, choice, ready, reasoning=True)
            text = choice.held
            if not choice.answer_started:  # the blank line after </think>
                text = text.lstrip()
                if not text and not final:
                    return out
            choice.held = ""
            return out + self._emit(index, choice, text, reasoning=False)

    def _emit(self, index: int, choice: _Choice, text: str, reasoning: bool) -> list[ChatEvent]:
        if not text:
            return []
        tokens, choice.tokens = choice.tokens, 0
        if reasoning:
            return [ReasoningDelta(index, text, tokens)] if self._keep else []
        choice.answer_started = True
        return [TextDelta(index, text, tokens)]


async def split_reasoning(
    events: AsyncGenerator[EngineEvent, None], starts_open: bool, keep_reasoning: bool
) -> AsyncGenerator[ChatEvent, None]:
    splitter = ReasoningSplitter(starts_open, keep_reasoning)
    async with aclosing(events):  # closing this stream stops the generation
        async for event in events:
            if isinstance(event, TextDelta):
                for out in splitter.feed(event):
                    yield out
            elif isinstance(event, ChoiceFinished):
                for out in splitter.finish(event):
                    yield out
            else:
                yield event
