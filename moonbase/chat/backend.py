"""The one shape chat/ talks to: a backend per engine kind, chosen by the registry.

``ChatService`` keeps what makes a request the platform's (admission, the
model's rules, settlement, tallies, chunks). Everything that depends on what
kind of engine serves the model lives behind ``ChatBackend``: how the prompt
is built and measured, how the completion budget is set, and how the engine's
output becomes ``ChatEvent``s, tool calls included. A request goes through a
backend in two steps, because ``moonshot-v1-auto`` picks its model from the
measured prompt in between::

    prompt = await backend.measure(plan, model, media)   # .size: prompt tokens
    generation = await prompt.generation(model, default_max_tokens)
    async for event in generation.events(): ...

The two backends: ``chat.templated`` (the platform renders, budgets, thinks
and parses calls over an ``Engine``) and ``chat.passthrough`` (the client's
body, media inlined, to a ``ChatEngine`` that does all of that itself).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Protocol

from moonbase.catalog import ServedModel
from moonbase.chat.conversation import Media
from moonbase.chat.sampling import SamplingPlan
from moonbase.chat.tools import ToolPlan
from moonbase.engines.base import ChatEvent, JsonConstraint
from moonbase.schemas.chat import ChatCompletionRequest, Message


@dataclass(frozen=True)
class ChatPlan:
    """What the platform decided about a request before any engine sees it."""

    request: ChatCompletionRequest
    request_id: str
    sampling: SamplingPlan
    tools: ToolPlan | None
    constraint: JsonConstraint | None  # JSON mode, a schema, or the forced tool calls
    stop: tuple[str, ...]

    @property
    def asked_tokens(self) -> int | None:
        """The completion budget the client set, if it set one."""
        return self.request.max_completion_tokens or self.request.max_tokens


@dataclass(frozen=True)
class Generation:
    """A request ready to run: its budget, and the events it yields when run."""

    request_id: str
    max_tokens: int
    n: int
    events: Callable[[], AsyncGenerator[ChatEvent, None]]  # closing the iterator aborts it


class MeasuredPrompt(Protocol):
    """A request's prompt as its backend built it, before the model is final."""

    @property
    def size(self) -> int:
        """Prompt tokens, media included (an estimate where the engine counts itself)."""
        ...

    async def generation(self, model: ServedModel, default_max_tokens: int) -> Generation:
        """Budget the completion on ``model`` (the requested one, or auto's pick on
        the same backend) and make the request runnable."""
        ...


class ChatBackend(Protocol):
    async def measure(self, plan: ChatPlan, model: ServedModel, media: Media) -> MeasuredPrompt:
        """Build the prompt; a client's mistake in it raises a ``BadRequestError``."""
        ...

    async def count_tokens(
        self, messages: list[Message], model: ServedModel, media: Media, tools: ToolPlan | None
    ) -> int:
        """Prompt tokens of ``messages`` (with the ``tools`` their system messages
        load) as a completion on ``model`` would count them."""
        ...
