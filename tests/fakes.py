"""A scripted engine that implements the engine protocol, for fast platform tests.

It "tokenizes" one token per character of a simple ChatML rendering and
replies with a scripted text, one character per token, honouring stop
strings, max_tokens and n like a real engine. The real embedded engine is
exercised by tests/e2e.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from moonbase.engines.base import (
    ChatTurn,
    ChoiceFinished,
    EngineCapabilities,
    EngineEvent,
    EngineHealth,
    FinishReason,
    GenerationRequest,
    PromptProcessed,
    TextDelta,
)
from moonbase.engines.stop import StopMatcher
from moonbase.errors import EngineOverloadedError


class ScriptedEngine:
    def __init__(
        self,
        reply: str = "Hello from the scripted engine.",
        context: int = 4096,
        delay: float = 0,
        vision: bool = False,
        native_reasoning: bool = False,
        tool_format: str = "hermes",
    ) -> None:
        self.reply = reply
        self.delay = delay  # seconds per token, to let a client leave mid-stream
        self._capabilities = EngineCapabilities(
            context_length=context,
            model_name="scripted",
            supports_image_in=vision,
            supports_video_in=vision,
            native_reasoning=native_reasoning,
            tool_format=tool_format,
        )
        self.rendered: list[list[ChatTurn]] = []  # the turns of every prompt rendered
        self.requests: list[GenerationRequest] = []
        self.closed = False
        self.overloaded = False  # set to refuse every request as a full queue would

    @property
    def capabilities(self) -> EngineCapabilities:
        return self._capabilities

    async def render_prompt(
        self, turns: list[ChatTurn], assistant_prefix: str | None = None
    ) -> tuple[int, ...]:
        self.rendered.append(turns)
        text = "".join(f"<{t.role}>{t.content}</{t.role}>" for t in turns) + "<assistant>"
        text += assistant_prefix or ""
        return tuple(ord(c) for c in text)

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[EngineEvent, None]:
        if self.overloaded:
            raise EngineOverloadedError("The engine is overloaded", retry_after=1)
        self.requests.append(request)
        yield PromptProcessed(len(request.prompt_tokens), 0)
        for index in range(request.n):
            matcher = StopMatcher(request.stop)
            finish: FinishReason = "stop"
            produced = 0
            for char in self.reply:
                if produced >= request.max_tokens:
                    finish = "length"
                    break
                produced += 1
                await asyncio.sleep(self.delay)
                if text := matcher.feed(char):
                    yield TextDelta(index, text, 1)
                if matcher.stopped:
                    break
            if tail := matcher.flush():
                yield TextDelta(index, tail)
            yield ChoiceFinished(
                index, finish, produced, matcher.matched if matcher.stopped else None
            )

    async def health(self) -> EngineHealth:
        return EngineHealth(ready=True, active=0, details={"status": "ok"})

    async def close(self) -> None:
        self.closed = True
