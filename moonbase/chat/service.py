"""Chat completions: the platform's semantics between the wire and an engine.

``admit`` lets a request in (key, balance, rate limits) from its parsed body
alone, before anything that costs more than parsing it; ``prepare`` validates
a request against its model's rules and budget and turns it into an
engine-neutral ``GenerationRequest``; ``complete`` and ``stream`` run it and
assemble the result. Every generation, finished or interrupted, leaves one
usage record.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import anyio

from moonbase.billing.service import BillingService, Ticket
from moonbase.catalog import AUTO_MODEL_ID, ServedModel, pick_auto_model
from moonbase.chat.chunks import ChunkFactory
from moonbase.chat.conversation import (
    Conversation,
    check_partial_mode,
    stop_strings,
    to_conversation,
)
from moonbase.chat.media import MediaResolver, find_media
from moonbase.chat.native_reasoning import split_reasoning
from moonbase.chat.response_format import output_constraint
from moonbase.chat.sampling import SamplingPlan, plan_sampling
from moonbase.chat.tally import Tally
from moonbase.chat.thinking import (
    ANSWER_INSTRUCTION,
    REASONING_INSTRUCTION,
    ThinkingPlan,
    think_then_answer,
)
from moonbase.chat.tools import ToolPlan, calls_constraint, parse_reply, plan_tools
from moonbase.chat.upstream_messages import inline_media
from moonbase.engines.base import (
    ChatCall,
    ChatEngine,
    ChatEvent,
    ChatTurn,
    ChoiceFinished,
    Engine,
    GenerationRequest,
    MediaInput,
    PromptProcessed,
    ReasoningDelta,
    TextDelta,
    is_chat_engine,
    is_token_engine,
)
from moonbase.engines.llamacpp.chat_template import ChatTemplateError
from moonbase.engines.upstream.engine import estimate_tokens
from moonbase.errors import BadRequestError, InternalError, MoonbaseError, token_limit_exceeded
from moonbase.metrics import Metrics
from moonbase.registry import ModelRegistry
from moonbase.schemas.chat import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    Message,
)
from moonbase.store.repositories import usage as usage_repo
from moonbase.store.repositories.api_keys import KeyOwner


@dataclass(frozen=True)
class BatchRun:
    """A generated batch line, not yet charged."""

    ticket: Ticket
    usage: usage_repo.GenerationUsage
    completion: ChatCompletion | None  # None: the engine failed mid-generation
    error: MoonbaseError | None = None


@dataclass(frozen=True)
class PreparedChat:
    completion_id: str
    created: int
    model_id: str  # the id the response reports (moonshot-v1-auto reports its pick)
    engine: Engine | ChatEngine
    generation: GenerationRequest  # an upstream engine's has no prompt tokens (see call)
    include_usage: bool
    tools: ToolPlan | None
    thinking: ThinkingPlan | None  # a reasoning phase, for models that do not reason natively
    show_reasoning: bool  # thinking is on: reasoning_content is sent
    prompt_cache_key: str | None
    safety_identifier: str | None
    prompt_size: int  # tokens, for admission (an estimate for upstream engines)
    call: ChatCall | None = None  # an upstream engine takes the conversation itself


class ChatService:
    def __init__(
        self,
        registry: ModelRegistry,
        billing: BillingService,
        media: MediaResolver,
        default_max_tokens: int,
        metrics: Metrics | None = None,
    ) -> None:
        self._registry = registry
        self._billing = billing
        self._media = media
        self._default_max_tokens = default_max_tokens
        self._metrics = metrics

    async def admit(
        self, request: ChatCompletionRequest, request_id: str, caller: KeyOwner
    ) -> Ticket:
        """Admission before work: templating, tokenizing and media decoding come
        after it, so a refused caller (no money, over its limits) costs the
        server a parse and nothing more. Sized by a character estimate of the
        prompt; the rate-limit counts take the real size when it settles."""
        model = self._registry.get(request.model)
        prompt = estimate_message_tokens(request.messages)
        n = request.n or 1
        asked = request.max_completion_tokens or request.max_tokens
        completion = n * (asked or min(self._default_max_tokens, model.context_length))
        max_cost = self._billing.max_cost(model.id, prompt, completion)
        return await self._billing.admit(caller, request_id, prompt + completion, max_cost)

    async def admit_count(
        self, model_id: str, messages: list[Message], request_id: str, caller: KeyOwner
    ) -> Ticket:
        """Admission of a token count: a request in the RPM and concurrency
        counts, holding no money (it is not charged)."""
        self._registry.get(model_id)
        return await self._billing.admit(caller, request_id, 0)

    def reserve(self, ticket: Ticket, chat: PreparedChat) -> None:
        """Hold the prepared request's exact maximum cost against the balance."""
        generation = chat.generation
        completion = generation.n * generation.max_tokens
        self._billing.reserve(
            ticket, self._billing.max_cost(chat.model_id, chat.prompt_size, completion)
        )

    async def release(self, ticket: Ticket) -> None:
        """A request admitted but refused before it reached the engine."""
        await self._billing.release(ticket)

    async def count_prompt_tokens(
        self, model_id: str, messages: list[Message], account_id: str
    ) -> int:
        """Tokens of the chat-templated prompt and its media, as a completion counts them."""
        model = self._registry.get(model_id)
        engine = self._registry.engine(model)
        if is_chat_engine(engine):
            media = await self._media_of(messages, model, account_id)
            wire = [message.model_dump(mode="json", exclude_unset=True) for message in messages]
            inline_media(wire, media)
            return await engine.count_tokens(model.id, wire)
        conversation = await self._conversation(messages, model, account_id)
        prompt = await self._tokens(model, conversation.turns, conversation.assistant_prefix)
        return len(prompt) + conversation.media_tokens

    async def _conversation(
        self,
        messages: list[Message],
        model: ServedModel,
        account_id: str,
        tools: ToolPlan | None = None,
        keep_reasoning: bool = False,
    ) -> Conversation:
        media = await self._media_of(messages, model, account_id)
        return to_conversation(messages, tools, keep_reasoning, media)

    async def _media_of(
        self, messages: list[Message], model: ServedModel, account_id: str
    ) -> dict[tuple[int, int], MediaInput]:
        references = find_media(messages)
        if not references:
            return {}
        capable = {
            "image": [m.id for m in self._registry.all() if m.supports_image_in],
            "video": [m.id for m in self._registry.all() if m.supports_video_in],
        }
        return await self._media.resolve(references, account_id, model, capable)

    async def prepare(
        self, request: ChatCompletionRequest, request_id: str, account_id: str
    ) -> PreparedChat:
        model = self._registry.get(request.model)
        plan = plan_sampling(model.family, request)
        check_partial_mode(request)
        tools = plan_tools(request)
        constraint = output_constraint(request.response_format)
        if tools is not None and tools.forced:
            if constraint is not None:
                raise BadRequestError(
                    "a required tool call cannot be combined with a JSON response_format",
                    param="tool_choice",
                )
            constraint = calls_constraint(tools)
        stops = stop_strings(request.stop)
        if is_chat_engine(self._registry.engine(model)):
            return await self._prepare_call(request, request_id, account_id, model, plan, tools)
        conversation = await self._conversation(
            request.messages, model, account_id, tools, plan.keep_reasoning
        )
        prompt = await self._tokens(model, conversation.turns, conversation.assistant_prefix)
        prompt_size = len(prompt) + conversation.media_tokens
        asked = request.max_completion_tokens or request.max_tokens
        if model.id == AUTO_MODEL_ID:
            model = self._registry.get(
                pick_auto_model(prompt_size, asked or self._default_max_tokens)
            )
        max_tokens = self._budget(model, prompt_size, asked)
        engine = self._registry.engine(model)
        thinking = None
        if plan.thinking and not engine.capabilities.native_reasoning:
            thinking = await self._thinking_plan(model, conversation)
        return PreparedChat(
            completion_id=f"chatcmpl-{secrets.token_hex(12)}",
            created=int(time.time()),
            model_id=model.id,
            engine=engine,
            generation=GenerationRequest(
                request_id=request_id,
                prompt_tokens=prompt,
                max_tokens=max_tokens,
                sampling=plan.params,
                stop=stops,
                n=plan.n,
                cache_key=request.prompt_cache_key,
                constraint=constraint,
            ),
            include_usage=bool(request.stream_options and request.stream_options.include_usage),
            tools=tools,
            thinking=thinking,
            show_reasoning=plan.thinking,
            prompt_cache_key=request.prompt_cache_key,
            safety_identifier=request.safety_identifier,
            prompt_size=prompt_size,
        )

    async def _prepare_call(
        self,
        request: ChatCompletionRequest,
        request_id: str,
        account_id: str,
        model: ServedModel,
        plan: SamplingPlan,
        tools: ToolPlan | None,
    ) -> PreparedChat:
        """An upstream engine's request: the conversation as sent, media inlined.

        The upstream templates and counts the prompt itself; the platform's
        estimate only sizes the admission and the default max tokens, and the
        upstream enforces its context (its refusal reaches the client as a
        400). Billing uses the usage the upstream reports.
        """
        body = request.model_dump(mode="json", by_alias=True, exclude_unset=True)
        media = await self._media_of(request.messages, model, account_id)
        inline_media(body["messages"], media)
        prompt_size = estimate_tokens(body["messages"]) + sum(m.tokens for m in media.values())
        asked = request.max_completion_tokens or request.max_tokens
        if model.id == AUTO_MODEL_ID:
            picked = pick_auto_model(prompt_size, asked or self._default_max_tokens)
            if not is_chat_engine(self._registry.engine(self._registry.get(picked))):
                return await self.prepare(
                    request.model_copy(update={"model": picked}), request_id, account_id
                )
            model = self._registry.get(picked)
        body["model"] = model.id
        max_tokens = asked or max(
            1, min(self._default_max_tokens, model.context_length - prompt_size)
        )
        sampling = plan.params
        previous_calls = sum(len(m.tool_calls or []) for m in request.messages)
        return PreparedChat(
            completion_id=f"chatcmpl-{secrets.token_hex(12)}",
            created=int(time.time()),
            model_id=model.id,
            engine=self._registry.engine(model),
            generation=GenerationRequest(
                request_id=request_id,
                prompt_tokens=(),
                max_tokens=max_tokens,
                sampling=sampling,
                n=plan.n,
                cache_key=request.prompt_cache_key,
            ),
            include_usage=bool(request.stream_options and request.stream_options.include_usage),
            tools=tools,
            thinking=None,
            show_reasoning=plan.thinking,
            prompt_cache_key=request.prompt_cache_key,
            safety_identifier=request.safety_identifier,
            prompt_size=prompt_size,
            call=ChatCall(
                request_id=request_id,
                body=body,
                max_tokens=max_tokens,
                sampling=sampling,
                n=plan.n,
                thinking=plan.thinking,
                keep_reasoning=plan.keep_reasoning,
                first_call_index=tools.first_call_index if tools else previous_calls,
                prompt_estimate=prompt_size,
                stream=request.stream,
            ),
        )

    def _events(self, chat: PreparedChat) -> AsyncGenerator[ChatEvent, None]:
        if chat.call is not None:
            assert is_chat_engine(chat.engine)
            return _reasoning_shown(chat.engine.chat(chat.call), chat.show_reasoning)
        assert is_token_engine(chat.engine)
        if chat.thinking is not None:
            return think_then_answer(chat.engine, chat.generation, chat.thinking)
        capabilities = chat.engine.capabilities
        if capabilities.native_reasoning:
            return split_reasoning(
                chat.engine.generate(chat.generation),
                capabilities.reasoning_starts_open,
                keep_reasoning=chat.show_reasoning,
            )
        return chat.engine.generate(chat.generation)

    async def _thinking_plan(self, model: ServedModel, conversation: Conversation) -> ThinkingPlan:
        turns = conversation.turns

        async def render_answer(reasoning: str) -> tuple[int, ...]:
            note = ChatTurn("system", ANSWER_INSTRUCTION.format(reasoning=reasoning))
            return await self._tokens(model, [*turns, note], conversation.assistant_prefix)

        instruction = ChatTurn("system", REASONING_INSTRUCTION)
        return ThinkingPlan(
            reasoning_prompt=await self._tokens(model, [*turns, instruction], None),
            render_answer=render_answer,
            context_length=model.context_length,
        )

    async def complete(self, chat: PreparedChat, ticket: Ticket) -> ChatCompletion:
        tally = Tally(chat.generation.n)
        try:
            async with aclosing(self._events(chat)) as events:
                async for event in events:
                    tally.add(event)
        finally:
            await self._settle(chat, ticket, tally)
        return self._completion(chat, tally)

    async def run_batch_line(self, chat: PreparedChat, caller: KeyOwner) -> BatchRun:
        """Generate a batch line without charging it: the worker charges lines in
        groups, each with its result (``BillingService.settle_many``), and checks
        the balance itself (``BillingService.ensure_funded``). Batch lines take no
        rate-limit slot: the worker's own concurrency bounds them, so they never
        crowd out online requests. A refusal before the engine starts raises; a
        worker shutting down (cancelled) leaves nothing to charge, so the line
        runs again and is never paid twice."""
        tally = Tally(chat.generation.n)
        ticket = Ticket(chat.generation.request_id, caller, time.monotonic())
        try:
            async with aclosing(self._events(chat)) as events:
                async for event in events:
                    tally.add(event)
        except Exception as exc:
            if not tally.started:
                raise
            error = exc if isinstance(exc, MoonbaseError) else InternalError(str(exc))
            return BatchRun(ticket, self._usage(chat, ticket, tally), None, error)
        return BatchRun(ticket, self._usage(chat, ticket, tally), self._completion(chat, tally))

    def _completion(self, chat: PreparedChat, tally: Tally) -> ChatCompletion:
        return ChatCompletion(
            id=chat.completion_id,
            created=chat.created,
            model=chat.model_id,
            choices=[self._choice(chat, tally, index) for index in range(chat.generation.n)],
            usage=tally.usage(),
        )

    def _choice(self, chat: PreparedChat, tally: Tally, index: int) -> Choice:
        finish = tally.finish_reasons.get(index, "stop")
        text = tally.text(index)
        reasoning = tally.reasoning_text(index)
        if index in tally.tool_calls:  # an upstream engine parsed its calls itself
            message = AssistantMessage.model_validate(
                {
                    "content": text,
                    "reasoning_content": reasoning,
                    "tool_calls": tally.tool_calls[index],
                }
            )
            return Choice(index=index, message=message, finish_reason="tool_calls")
        # An upstream's calls came parsed (above); the embedded engine's are in the text.
        own_calls = chat.tools is not None and chat.call is None
        reply = parse_reply(text, chat.tools) if own_calls and chat.tools is not None else None
        if reply is None or not reply.calls:
            message = AssistantMessage(content=text, reasoning_content=reasoning)
            return Choice(index=index, message=message, finish_reason=finish)
        message = AssistantMessage.model_validate(
            {"content": reply.content, "reasoning_content": reasoning, "tool_calls": reply.calls}
        )
        return Choice(index=index, message=message, finish_reason="tool_calls")

    async def stream(
        self, chat: PreparedChat, ticket: Ticket
    ) -> AsyncGenerator[dict[str, Any], None]:
        chunks = ChunkFactory(chat.completion_id, chat.created, chat.model_id, chat.include_usage)
        tally = Tally(chat.generation.n)
        last_finish: tuple[int, str] | None = None  # held until the usage is final
        try:
            async with aclosing(self._events(chat)) as events:
                async for event in events:
                    tally.add(event)
                    if isinstance(event, PromptProcessed):
                        # Nothing is sent before the engine has taken the request, so
                        # a refusal (a full queue) can still be a plain HTTP error.
                        for index in range(chat.generation.n):
                            yield chunks.role(index)
                    elif isinstance(event, ReasoningDelta):
                        yield chunks.reasoning(event.index, event.text)
                    elif isinstance(event, TextDelta) and (chat.tools is None or chat.call):
                        yield chunks.content(event.index, event.text)
                    elif isinstance(event, ChoiceFinished):
                        reason: str = event.finish_reason
                        if event.index in tally.tool_calls:  # an upstream's own calls
                            yield chunks.tool_calls(event.index, tally.tool_calls[event.index])
                            reason = "tool_calls"
                        elif chat.tools is not None and chat.call is None:
                            # sent whole, once it is known to be a call
                            reply = parse_reply(tally.text(event.index), chat.tools)
                            if reply.content:
                                yield chunks.content(event.index, reply.content)
                            if reply.calls:
                                yield chunks.tool_calls(event.index, reply.calls)
                                reason = "tool_calls"
                        if tally.finished:
                            # An upstream reports usage after the last choice ends.
                            last_finish = (event.index, reason)
                        else:
                            yield chunks.finish(event.index, reason, None)
            if last_finish is not None:
                yield chunks.finish(*last_finish, tally.usage())
            if chat.include_usage:
                yield chunks.usage(tally.usage())
        finally:
            await self._settle(chat, ticket, tally)

    async def _tokens(
        self, model: ServedModel, turns: list[ChatTurn], assistant_prefix: str | None
    ) -> tuple[int, ...]:
        engine = self._registry.engine(model)
        assert is_token_engine(engine), "upstream engines template prompts themselves"
        try:
            return await engine.render_prompt(turns, assistant_prefix)
        except ChatTemplateError as exc:
            raise BadRequestError(str(exc), param="messages") from exc

    def _budget(self, model: ServedModel, prompt_tokens: int, asked: int | None) -> int:
        """Completion tokens this request may use within the model's context."""
        limit = model.context_length
        if asked is not None:
            if prompt_tokens + asked > limit:
                raise token_limit_exceeded(limit)
            return asked
        if prompt_tokens >= limit:
            raise token_limit_exceeded(limit)
        return min(self._default_max_tokens, limit - prompt_tokens)

    async def _settle(self, chat: PreparedChat, ticket: Ticket, tally: Tally) -> None:
        """Charge and record what was generated, even while the request is cancelled."""
        with anyio.CancelScope(shield=True):
            if not tally.started:  # refused or gone before the engine took it: no charge
                await self._billing.release(ticket)
                return
            usage = self._usage(chat, ticket, tally)
            await self._billing.settle(ticket, usage)
        if self._metrics is not None:
            self._metrics.record_usage(
                chat.model_id, usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens
            )
            if tally.first_text_at is not None:
                wait = tally.first_text_at - ticket.started
                self._metrics.first_token.labels(chat.model_id).observe(wait)

    def _usage(
        self, chat: PreparedChat, ticket: Ticket, tally: Tally
    ) -> usage_repo.GenerationUsage:
        return usage_repo.GenerationUsage(
            request_id=chat.generation.request_id,
            account_id=ticket.caller.account_id,
            api_key_id=ticket.caller.key_id,
            model=chat.model_id,
            prompt_tokens=tally.prompt_tokens,
            completion_tokens=tally.total_completion_tokens,
            cached_tokens=tally.cached_tokens,
            status="completed" if tally.finished else "interrupted",
            prompt_cache_key=chat.prompt_cache_key,
            safety_identifier=chat.safety_identifier,
        )


async def _reasoning_shown(
    events: AsyncGenerator[ChatEvent, None], shown: bool
) -> AsyncGenerator[ChatEvent, None]:
    """An upstream's reasoning, dropped when thinking is off (Moonshot sends none then)."""
    async with aclosing(events):
        async for event in events:
            if shown or not isinstance(event, ReasoningDelta):
                yield event


def estimate_message_tokens(messages: list[Message]) -> int:
    """A prompt's size from its characters, before any templating (the upstream
    engine's estimate; media are not decoded here, so they are not counted)."""
    return estimate_tokens(
        [message.model_dump(include={"content", "tool_calls"}) for message in messages]
    )
