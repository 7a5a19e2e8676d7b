"""The backend over an engine that generates from tokens (the embedded llama.cpp).

Here the platform does what an upstream server would do for itself: it turns
messages into turns (tools described in a system block), renders and
tokenizes them with the model's chat template, enforces the context (a prompt
plus ``max_tokens`` over it is a 400), runs a reasoning phase for models that
do not reason natively, splits ``<think>`` blocks for those that do, and
parses the model's tool calls out of its text.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial

from moonbase.catalog import ServedModel
from moonbase.chat.backend import ChatPlan, Generation, Media
from moonbase.chat.conversation import Conversation, to_conversation
from moonbase.chat.native_reasoning import split_reasoning
from moonbase.chat.thinking import (
    ANSWER_INSTRUCTION,
    REASONING_INSTRUCTION,
    ThinkingPlan,
    think_then_answer,
)
from moonbase.chat.tool_formats import FORMATS, HERMES
from moonbase.chat.tools import ReplyStream, ToolPlan, parse_reply
from moonbase.engines.base import (
    ChatEvent,
    ChatTemplateError,
    ChatTurn,
    ChoiceFinished,
    Engine,
    GenerationRequest,
    TextDelta,
    ToolCallsMade,
)
from moonbase.errors import BadRequestError, token_limit_exceeded
from moonbase.schemas.chat import Message


class TemplatedBackend:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._tool_format = FORMATS.get(engine.capabilities.tool_format, HERMES)

    async def measure(self, plan: ChatPlan, model: ServedModel, media: Media) -> TemplatedPrompt:
        conversation = to_conversation(
            plan.request.messages,
            plan.tools,
            plan.sampling.keep_reasoning,
            media,
            self._tool_format,
        )
        tokens = await self._render(conversation.turns, conversation.assistant_prefix)
        return TemplatedPrompt(self, plan, conversation, tokens)

    async def count_tokens(
        self, messages: list[Message], model: ServedModel, media: Media, tools: ToolPlan | None
    ) -> int:
        conversation = to_conversation(messages, tools, media=media, tool_format=self._tool_format)
        tokens = await self._render(conversation.turns, conversation.assistant_prefix)
        return len(tokens) + conversation.media_tokens

    async def _render(self, turns: list[ChatTurn], assistant_prefix: str | None) -> tuple[int, ...]:
        try:
            return await self._engine.render_prompt(turns, assistant_prefix)
        except ChatTemplateError as exc:
            raise BadRequestError(str(exc), param="messages") from exc

    async def generation(
        self, prompt: TemplatedPrompt, model: ServedModel, default_max_tokens: int
    ) -> Generation:
        plan = prompt.plan
        max_tokens = _budget(model, prompt.size, plan.asked_tokens, default_max_tokens)
        request = GenerationRequest(
            request_id=plan.request_id,
            prompt_tokens=prompt.tokens,
            max_tokens=max_tokens,
            sampling=plan.sampling.params,
            stop=plan.stop,
            n=plan.sampling.n,
            cache_key=plan.request.prompt_cache_key,
            constraint=plan.constraint,
        )
        thinking = None
        if plan.sampling.thinking and not self._engine.capabilities.native_reasoning:
            thinking = await self._thinking_plan(model, prompt.conversation)
        events = partial(self._events, request, thinking, plan.sampling.thinking, plan.tools)
        return Generation(plan.request_id, max_tokens, plan.sampling.n, events)

    async def _thinking_plan(self, model: ServedModel, conversation: Conversation) -> ThinkingPlan:
        turns = conversation.turns

        async def render_answer(reasoning: str) -> tuple[int, ...]:
            note = ChatTurn("system", ANSWER_INSTRUCTION.format(reasoning=reasoning))
            return await self._render([*turns, note], conversation.assistant_prefix)

        instruction = ChatTurn("system", REASONING_INSTRUCTION)
        return ThinkingPlan(
            reasoning_prompt=await self._render([*turns, instruction], None),
            render_answer=render_answer,
            context_length=model.context_length,
        )

    def _events(
        self,
        request: GenerationRequest,
        thinking: ThinkingPlan | None,
        show_reasoning: bool,
        tools: ToolPlan | None,
    ) -> AsyncGenerator[ChatEvent, None]:
        capabilities = self._engine.capabilities
        events: AsyncGenerator[ChatEvent, None]
        if thinking is not None:
            events = think_then_answer(self._engine, request, thinking)
        elif capabilities.native_reasoning:
            events = split_reasoning(
                self._engine.generate(request),
                capabilities.reasoning_starts_open,
                keep_reasoning=show_reasoning,
            )
        else:
            events = self._engine.generate(request)
        return events if tools is None else _with_tool_calls(events, tools)


@dataclass(frozen=True)
class TemplatedPrompt:
    backend: TemplatedBackend
    plan: ChatPlan
    conversation: Conversation
    tokens: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.tokens) + self.conversation.media_tokens

    async def generation(self, model: ServedModel, default_max_tokens: int) -> Generation:
        return await self.backend.generation(self, model, default_max_tokens)


def _budget(model: ServedModel, prompt_tokens: int, asked: int | None, default: int) -> int:
    """Completion tokens this request may use within the model's context."""
    limit = model.context_length
    if asked is not None:
        if prompt_tokens + asked > limit:
            raise token_limit_exceeded(limit)
        return asked
    if prompt_tokens >= limit:
        raise token_limit_exceeded(limit)
    return min(default, limit - prompt_tokens)


async def _with_tool_calls(
    events: AsyncGenerator[ChatEvent, None], tools: ToolPlan
) -> AsyncGenerator[ChatEvent, None]:
    """The model writes its calls in its text, in its family's format.

    Under "auto" each choice's text is split as it streams: content that
    cannot begin a call goes out at once, each call as soon as it is complete
    (``ToolCallsMade``); what may still become a call is held (its tokens
    counted meanwhile by empty deltas, for billing). A forced reply is one
    JSON object, held and parsed when its choice ends."""
    held: dict[int, list[str]] = {}
    streams: dict[int, ReplyStream] = {}
    async with aclosing(events):  # closing this stream stops the generation
        async for event in events:
            if isinstance(event, TextDelta) and tools.forced:
                held.setdefault(event.index, []).append(event.text)
                yield TextDelta(event.index, "", event.tokens)
            elif isinstance(event, TextDelta):
                stream = streams.setdefault(event.index, ReplyStream(tools))
                content, calls = stream.feed(event.text)
                yield TextDelta(event.index, content, event.tokens)
                if calls:
                    yield ToolCallsMade(event.index, tuple(calls))
            elif isinstance(event, ChoiceFinished):
                if tools.forced:
                    reply = parse_reply("".join(held.pop(event.index, ())), tools)
                    rest, made = reply.content, reply.calls
                else:
                    rest, made = streams.pop(event.index, ReplyStream(tools)).finish()
                if rest:
                    yield TextDelta(event.index, rest)
                if made:
                    yield ToolCallsMade(event.index, tuple(made))
                yield event
            else:
                yield event
