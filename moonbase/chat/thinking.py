"""Thinking for models that do not reason natively: a real reasoning phase.

The same model first writes its reasoning (prompted to think step by step and
not to answer yet); that text is ``reasoning_content``. It then answers with
its reasoning in the prompt. Nothing is canned: both phases are generations,
and both count as completion tokens. The prompt tokens reported are the
conversation's own, so ``estimate-token-count`` still equals them.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, replace

from moonbase.engines.base import (
    ChatEvent,
    ChoiceFinished,
    Engine,
    GenerationRequest,
    PromptProcessed,
    ReasoningDelta,
    TextDelta,
)

REASONING_INSTRUCTION = (
    "Before answering, think the request through step by step. "
    "Write only your reasoning, not the final answer."
)
ANSWER_INSTRUCTION = "Your reasoning was:\n{reasoning}\n\nNow give the user your final answer."
MAX_REASONING_TOKENS = 256


@dataclass(frozen=True)
class ThinkingPlan:
    reasoning_prompt: tuple[int, ...]
    render_answer: Callable[[str], Awaitable[tuple[int, ...]]]  # reasoning -> answer prompt
    context_length: int


def reasoning_budget(max_tokens: int) -> int:
    """At most half of the completion budget goes to reasoning."""
    return max(1, min(MAX_REASONING_TOKENS, max_tokens // 2))


async def think_then_answer(
    engine: Engine, request: GenerationRequest, plan: ThinkingPlan
) -> AsyncGenerator[ChatEvent, None]:
    """Each choice reasons, then answers; events as one generation would send them."""
    reported = False
    for index in range(request.n):
        reasoning: list[str] = []
        used = 0
        thinking = replace(
            request,
            prompt_tokens=plan.reasoning_prompt,
            max_tokens=reasoning_budget(request.max_tokens),
            n=1,
            stop=(),
            constraint=None,
        )
        async with aclosing(engine.generate(thinking)) as events:
            async for event in events:
                if isinstance(event, PromptProcessed) and not reported:
                    reported = True
                    own = len(request.prompt_tokens)
                    yield PromptProcessed(own, min(event.cached_tokens, own))
                elif isinstance(event, TextDelta):
                    reasoning.append(event.text)
                    yield ReasoningDelta(index, event.text, event.tokens)
                elif isinstance(event, ChoiceFinished):
                    used = event.completion_tokens
        answer_prompt = await plan.render_answer("".join(reasoning).strip())
        room = plan.context_length - len(answer_prompt)
        answering = replace(
            request,
            prompt_tokens=answer_prompt,
            max_tokens=max(1, min(request.max_tokens - used, room)),
            n=1,
        )
        async with aclosing(engine.generate(answering)) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    yield TextDelta(index, event.text, event.tokens)
                elif isinstance(event, ChoiceFinished):
                    total = used + event.completion_tokens
                    yield replace(event, index=index, completion_tokens=total)
