"""The backend over an engine that takes whole conversations (an upstream server).

The upstream templates, counts and parses the prompt itself, so the request
goes on as the client sent it (only the fields it set), with media inlined as
data URLs. The platform's character estimate only sizes admission and the
default ``max_tokens``; the upstream enforces its context (its refusal
reaches the client as a 400), and billing uses the usage it reports.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial
from typing import Any

from moonbase.catalog import ServedModel
from moonbase.chat.backend import ChatPlan, Generation, Media
from moonbase.chat.tools import ToolPlan
from moonbase.chat.upstream_messages import inline_media
from moonbase.engines.base import ChatCall, ChatEngine, ChatEvent, ReasoningDelta, estimate_tokens
from moonbase.schemas.chat import Message


class PassthroughBackend:
    def __init__(self, engine: ChatEngine) -> None:
        self._engine = engine

    async def measure(self, plan: ChatPlan, model: ServedModel, media: Media) -> PassthroughPrompt:
        body = plan.request.model_dump(mode="json", by_alias=True, exclude_unset=True)
        inline_media(body["messages"], media)
        size = estimate_tokens(body["messages"], body.get("tools"))
        size += sum(item.tokens for item in media.values())
        return PassthroughPrompt(self, plan, body, size)

    async def count_tokens(
        self, messages: list[Message], model: ServedModel, media: Media, tools: ToolPlan | None
    ) -> int:
        """The upstream's count; the tools ride in their system messages (the
        request's own tools in a system message of their own, which every
        flavour but Moonshot's merges back into the request's tools)."""
        wire = [message.model_dump(mode="json", exclude_unset=True) for message in messages]
        inline_media(wire, media)
        requested = tools.declared_at(None) if tools is not None else []
        if requested:
            dumped = [tool.model_dump(mode="json", exclude_none=True) for tool in requested]
            wire.insert(0, {"role": "system", "content": "", "tools": dumped})
        return await self._engine.count_tokens(model.id, wire)

    async def generation(
        self, prompt: PassthroughPrompt, model: ServedModel, default_max_tokens: int
    ) -> Generation:
        plan = prompt.plan
        max_tokens = plan.asked_tokens or max(
            1, min(default_max_tokens, model.context_length - prompt.size)
        )
        tools = plan.tools
        previous_calls = sum(len(m.tool_calls or []) for m in plan.request.messages)
        call = ChatCall(
            request_id=plan.request_id,
            body={**prompt.body, "model": model.id},
            max_tokens=max_tokens,
            sampling=plan.sampling.params,
            n=plan.sampling.n,
            thinking=plan.sampling.thinking,
            keep_reasoning=plan.sampling.keep_reasoning,
            first_call_index=tools.first_call_index if tools else previous_calls,
            prompt_estimate=prompt.size,
            stream=plan.request.stream,
        )
        events = partial(self._events, call, plan.sampling.thinking)
        return Generation(plan.request_id, max_tokens, plan.sampling.n, events)

    async def _events(
        self, call: ChatCall, show_reasoning: bool
    ) -> AsyncGenerator[ChatEvent, None]:
        """The upstream's events; its reasoning is dropped when thinking is off
        (Moonshot sends none then)."""
        async with aclosing(self._engine.chat(call)) as events:
            async for event in events:
                if show_reasoning or not isinstance(event, ReasoningDelta):
                    yield event


@dataclass(frozen=True)
class PassthroughPrompt:
    backend: PassthroughBackend
    plan: ChatPlan
    body: dict[str, Any]  # the client's request as sent, media inlined
    size: int  # the character estimate

    async def generation(self, model: ServedModel, default_max_tokens: int) -> Generation:
        return await self.backend.generation(self, model, default_max_tokens)
