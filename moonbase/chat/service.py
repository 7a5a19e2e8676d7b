"""Chat completions: the platform's semantics between the wire and an engine.

``admit`` lets a request in (key, balance, rate limits) from its parsed body
alone, before anything that costs more than parsing it; ``prepare`` validates
a request against its model's rules and hands it to the model's backend
(``chat.backend``), which builds, measures and budgets the prompt for its
kind of engine; ``complete`` and ``stream`` run the backend's generation and
assemble its events into the result, never asking what engine made them.
Every generation, finished or interrupted, leaves one usage record.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import anyio

from moonbase.auth.caller import KeyOwner
from moonbase.billing.service import BillingService, Ticket
from moonbase.catalog import AUTO_MODEL_ID, ServedModel, pick_auto_model
from moonbase.chat.backend import ChatPlan, Generation
from moonbase.chat.chunks import ChunkFactory
from moonbase.chat.conversation import Media, check_partial_mode, stop_strings
from moonbase.chat.media import MediaResolver, find_media
from moonbase.chat.response_format import output_constraint
from moonbase.chat.sampling import check_choices, plan_sampling
from moonbase.chat.tally import Tally
from moonbase.chat.tools import calls_constraint, offered_in_messages, plan_tools
from moonbase.engines.base import (
    ChatEvent,
    ChoiceFinished,
    PromptProcessed,
    ReasoningDelta,
    TextDelta,
    ToolCallsMade,
    estimate_tokens,
)
from moonbase.errors import BadRequestError, InternalError, MoonbaseError
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
    generation: Generation
    include_usage: bool
    prompt_cache_key: str | None
    safety_identifier: str | None
    prompt_size: int  # tokens, for admission (an estimate for upstream engines)


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
        caller.check_model(model.id)
        prompt = estimate_message_tokens(request)
        n = check_choices(request.n)  # before it multiplies the hold (n: 2**63 was a 429)
        asked = request.max_completion_tokens or request.max_tokens
        # No completion outgrows the context: a larger ask is a 400 from
        # prepare (the prompt counted), never a rate limit that says wait.
        completion = n * min(asked or self._default_max_tokens, model.context_length)
        max_cost = self._billing.max_cost(model.id, prompt, completion)
        return await self._billing.admit(caller, request_id, prompt + completion, max_cost)

    async def admit_count(
        self, model_id: str, messages: list[Message], request_id: str, caller: KeyOwner
    ) -> Ticket:
        """Admission of a token count: a request in the RPM and concurrency
        counts, holding no money (it is not charged)."""
        caller.check_model(self._registry.get(model_id).id)
        return await self._billing.admit(caller, request_id, 0)

    async def start(
        self, request: ChatCompletionRequest, request_id: str, caller: KeyOwner
    ) -> tuple[Ticket, PreparedChat]:
        """Admit, prepare and reserve: a request ready to run (or generate).
        Refused after admission, its place is given back."""
        ticket = await self.admit(request, request_id, caller)
        try:
            chat = await self.prepare(
                request, request_id, caller.account_id, project_id=caller.project_id
            )
            self.reserve(ticket, chat)
        except BaseException:
            await self.release(ticket)
            raise
        return ticket, chat

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
        self, model_id: str, messages: list[Message], account_id: str, project_id: str | None
    ) -> int:
        """Tokens of the chat-templated prompt and its media, as a completion counts them."""
        model = self._registry.get(model_id)
        # a system message's tools count too
        tools = offered_in_messages(messages, model.tool_format)
        media = await self._media_of(messages, model, account_id, project_id)
        return await self._registry.backend(model).count_tokens(messages, model, media, tools)

    async def count_request_tokens(
        self,
        request: ChatCompletionRequest,
        request_id: str,
        account_id: str,
        project_id: str | None,
    ) -> int:
        """Prompt tokens a completion of ``request`` would bill: the same checks
        and the same prompt, its request-level tools included."""
        model = self._registry.get(request.model)
        plan = _plan(request, request_id, model)
        media = await self._media_of(request.messages, model, account_id, project_id)
        backend = self._registry.backend(model)
        return await backend.count_tokens(request.messages, model, media, plan.tools)

    async def _media_of(
        self,
        messages: list[Message],
        model: ServedModel,
        account_id: str,
        project_id: str | None,
    ) -> Media:
        references = find_media(messages)
        if not references:
            return {}
        capable = {
            "image": [m.id for m in self._registry.all() if m.supports_image_in],
            "video": [m.id for m in self._registry.all() if m.supports_video_in],
        }
        return await self._media.resolve(references, account_id, project_id, model, capable)

    async def prepare(
        self,
        request: ChatCompletionRequest,
        request_id: str,
        account_id: str,
        *,
        project_id: str | None,
    ) -> PreparedChat:
        """``project_id``: whose files ``ms://`` media may name (the caller's project)."""
        model = self._registry.get(request.model)
        plan = _plan(request, request_id, model)
        media = await self._media_of(request.messages, model, account_id, project_id)
        backend = self._registry.backend(model)
        prompt = await backend.measure(plan, model, media)
        if model.id == AUTO_MODEL_ID:
            asked = plan.asked_tokens or self._default_max_tokens
            model = self._registry.get(pick_auto_model(prompt.size, asked))
            if self._registry.backend(model) is not backend:  # measured by another engine
                prompt = await self._registry.backend(model).measure(plan, model, media)
        return PreparedChat(
            completion_id=f"chatcmpl-{secrets.token_hex(12)}",
            created=int(time.time()),
            model_id=model.id,
            generation=await prompt.generation(model, self._default_max_tokens),
            include_usage=bool(request.stream_options and request.stream_options.include_usage),
            prompt_cache_key=request.prompt_cache_key,
            safety_identifier=request.safety_identifier,
            prompt_size=prompt.size,
        )

    async def run(
        self, chat: PreparedChat, ticket: Ticket, tally: Tally
    ) -> AsyncGenerator[ChatEvent, None]:
        """The generation's events, each added to ``tally`` first; what was
        generated is charged and recorded when it ends, however it ends. Every
        surface (OpenAI's chunks, Anthropic's events) renders from this."""
        try:
            async with aclosing(chat.generation.events()) as events:
                async for event in events:
                    tally.add(event)
                    yield event
        finally:
            await self._settle(chat, ticket, tally)

    async def complete(self, chat: PreparedChat, ticket: Ticket) -> ChatCompletion:
        tally = await self.run_to_end(chat, ticket)
        return self._completion(chat, tally)

    async def run_to_end(self, chat: PreparedChat, ticket: Ticket) -> Tally:
        tally = Tally(chat.generation.n)
        async with aclosing(self.run(chat, ticket, tally)) as events:
            async for _ in events:
                pass
        return tally

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
            async with aclosing(chat.generation.events()) as events:
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
        text = tally.text(index)
        reasoning = tally.reasoning_text(index)
        if index in tally.tool_calls:
            message = AssistantMessage.model_validate(
                {
                    "content": text,
                    "reasoning_content": reasoning,
                    "tool_calls": tally.tool_calls[index],
                }
            )
            return Choice(index=index, message=message, finish_reason="tool_calls")
        message = AssistantMessage(content=text, reasoning_content=reasoning)
        return Choice(
            index=index, message=message, finish_reason=tally.finish_reasons.get(index, "stop")
        )

    async def stream(
        self, chat: PreparedChat, ticket: Ticket
    ) -> AsyncGenerator[dict[str, Any], None]:
        chunks = ChunkFactory(chat.completion_id, chat.created, chat.model_id, chat.include_usage)
        tally = Tally(chat.generation.n)
        last_finish: tuple[int, str] | None = None  # held until the usage is final
        calls_sent: dict[int, int] = {}  # per choice: its position among the calls
        async with aclosing(self.run(chat, ticket, tally)) as events:
            async for event in events:
                if isinstance(event, PromptProcessed):
                    # Nothing is sent before the engine has taken the request, so
                    # a refusal (a full queue) can still be a plain HTTP error.
                    for index in range(chat.generation.n):
                        yield chunks.role(index)
                elif isinstance(event, ReasoningDelta):
                    yield chunks.reasoning(event.index, event.text)
                elif isinstance(event, TextDelta) and event.text:
                    yield chunks.content(event.index, event.text)
                elif isinstance(event, ToolCallsMade):  # each call whole, as it is parsed
                    sent = calls_sent.get(event.index, 0)
                    yield chunks.tool_calls(event.index, list(event.calls), first=sent)
                    calls_sent[event.index] = sent + len(event.calls)
                elif isinstance(event, ChoiceFinished):
                    reason: str = event.finish_reason
                    if event.index in tally.tool_calls:
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
            api_key_id=ticket.caller.key_id or None,  # none: made in the console
            project_id=ticket.caller.project_id,
            model=chat.model_id,
            prompt_tokens=tally.prompt_tokens,
            completion_tokens=tally.total_completion_tokens,
            cached_tokens=tally.cached_tokens,
            status="completed" if tally.finished else "interrupted",
            prompt_cache_key=chat.prompt_cache_key,
            safety_identifier=chat.safety_identifier,
        )


def _plan(request: ChatCompletionRequest, request_id: str, model: ServedModel) -> ChatPlan:
    """The model's rules applied to the request, before any engine sees it."""
    sampling = plan_sampling(model.family, request)
    check_partial_mode(request)
    tools = plan_tools(request, model.family, model.tool_format)
    constraint = output_constraint(request.response_format)
    if tools is not None and tools.forced and constraint is not None:
        raise BadRequestError(
            "a required tool call cannot be combined with a JSON response_format",
            param="tool_choice",
        )
    if tools is not None and constraint is None:  # under "auto", a JSON reply format prevails
        constraint = calls_constraint(tools)
    return ChatPlan(request, request_id, sampling, tools, constraint, stop_strings(request.stop))


def estimate_message_tokens(request: ChatCompletionRequest) -> int:
    """A prompt's size from its characters, before any templating (the upstream
    engine's estimate; media are not decoded here, so they are not counted)."""
    messages = [m.model_dump(include={"content", "tool_calls", "tools"}) for m in request.messages]
    tools = [tool.model_dump() for tool in request.tools or ()]
    return estimate_tokens(messages, tools)
