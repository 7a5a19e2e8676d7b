"""An OpenAI-compatible server as the engine: vLLM, SGLang, llama-server, Moonshot.

The upstream applies its own chat template, tool-call parser and reasoning
parser; moonbase keeps what makes it a platform (validation, keys, balance,
billing, usage records, batches) and turns the upstream's answer back into
Moonshot's shape (``engines.upstream.flavours``).

Failures: a replica that refuses the connection, times out before answering
or answers 5xx is ejected and the request goes to the next one; nothing has
reached the client yet, so the retry is invisible. Once the upstream has
answered, a failure (a replica killed mid-stream, a silence past the read
timeout) ends the request with an error instead of a hang. No replica left:
503 at once; every replica busy (429): 429 ``engine_overloaded_error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import aiohttp
import orjson

from moonbase.bounds import whole_number
from moonbase.engines.base import (
    ChatCall,
    ChatEvent,
    ChatTemplateError,
    ChoiceFinished,
    EngineCapabilities,
    EngineHealth,
    FinishReason,
    PromptProcessed,
    ReasoningDelta,
    TextDelta,
    ToolCallsMade,
    UsageReported,
)
from moonbase.engines.upstream.flavours import (
    cached_tokens_of,
    reasoning_of,
    request_body,
    tool_call_id,
    without_message_tools,
)
from moonbase.engines.upstream.prompt_count import HfPromptCounter, TemplateCalibration
from moonbase.engines.upstream.replicas import Replica, ReplicaPool
from moonbase.errors import (
    BadRequestError,
    EngineOverloadedError,
    EngineUnavailableError,
)
from moonbase.settings import UpstreamEngineSettings

log = logging.getLogger(__name__)


class UpstreamEngine:
    def __init__(
        self,
        name: str,
        settings: UpstreamEngineSettings,
        model_names: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self._settings = settings
        self._model_names = dict(model_names or {})
        self._pool = ReplicaPool(settings.urls, settings.eject_s, settings.max_eject_s)
        self._session: aiohttp.ClientSession | None = None  # opened in the serving loop
        self._capabilities = EngineCapabilities(
            context_length=settings.context_length,
            supports_image_in=settings.supports_image_in,
            supports_video_in=settings.supports_video_in,
            model_name=settings.model or "",
            takes_conversations=True,
        )
        self._monitor: asyncio.Task[None] | None = None
        # Counting where the upstream cannot: a named tokenizer (exact), else
        # what its reported usage taught us of its template, per served model.
        self._counter = HfPromptCounter(settings.tokenizer) if settings.tokenizer else None
        self._calibrations: dict[str, TemplateCalibration] = {}

    @property
    def capabilities(self) -> EngineCapabilities:
        return self._capabilities

    @property
    def pool(self) -> ReplicaPool:
        return self._pool

    def upstream_model(self, model_id: str) -> str:
        return self._model_names.get(model_id) or self._settings.model or model_id

    # -- chat -------------------------------------------------------------------

    async def chat(self, call: ChatCall) -> AsyncGenerator[ChatEvent, None]:
        self._start_monitor()
        model = self.upstream_model(str(call.body.get("model", "")))
        body = request_body(call, self._settings.flavour, model)
        replica, response = await self._open("/chat/completions", body)
        try:
            yield PromptProcessed(call.prompt_estimate, 0)
            if call.stream:
                events = self._stream_events(response, call)
            else:
                payload = orjson.loads(await response.read())
                events = self._message_events(payload, call)
            async for event in events:
                if isinstance(event, UsageReported):
                    self._learn(model, call, event.prompt_tokens)
                yield event
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self._pool.failed(replica, _describe(exc))
            raise EngineUnavailableError(
                f"engine {self.name} failed mid-response ({_describe(exc)}); "
                "what was generated so far is billed"
            ) from exc
        finally:
            replica.in_flight -= 1
            response.release()  # back to the pool if read to the end, else closed

    def _client(self) -> aiohttp.ClientSession:
        """One keep-alive pool per engine (aiohttp: its C parser keeps the
        gateway's cost per request and per chunk low)."""
        if self._session is None or self._session.closed:
            settings = self._settings
            headers = {"authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
            self._session = aiohttp.ClientSession(
                headers=headers,
                connector=aiohttp.TCPConnector(
                    limit=settings.max_connections * len(settings.urls),
                    limit_per_host=settings.max_connections,
                ),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=settings.connect_timeout_s,
                    sock_read=settings.read_timeout_s,
                ),
            )
        return self._session

    async def _open(
        self, path: str, body: dict[str, Any], root: bool = False
    ) -> tuple[Replica, aiohttp.ClientResponse]:
        """Send to the least busy replica, the next one on a failure before any answer.

        ``root``: the path is beside the API prefix, not under it (vLLM's and
        llama-server's /tokenize)."""
        tried: set[str] = set()
        overloaded: EngineOverloadedError | None = None
        failure = "no replica is healthy"
        while (replica := self._pool.pick(tried)) is not None:
            tried.add(replica.url)
            replica.in_flight += 1
            try:
                base = replica.url.removesuffix("/v1") if root else replica.url
                response = await self._client().post(base + path, json=body)
            except (aiohttp.ClientError, TimeoutError) as exc:
                replica.in_flight -= 1
                failure = f"{replica.url}: {_describe(exc)}"
                self._pool.failed(replica, _describe(exc))
                log.warning("engine %s: replica %s failed: %s", self.name, replica.url, failure)
                continue
            if response.status < 400:
                self._pool.succeeded(replica)
                return replica, response
            replica.in_flight -= 1
            detail = await _error_detail(response)
            if response.status == 429:
                overloaded = EngineOverloadedError(
                    f"engine {self.name} is overloaded, please try again later ({detail})",
                    retry_after=_seconds(response.headers.get("retry-after")),
                )
                continue
            if response.status == 404 and root:  # the server has no such endpoint
                raise LookupError(f"{replica.url.removesuffix('/v1')}{path}: {detail}")
            if response.status >= 500 or response.status in (401, 403, 404):
                # The replica is broken or misconfigured (wrong key, wrong path):
                # the client can do nothing about it.
                failure = f"{replica.url}: {detail}"
                self._pool.failed(replica, failure)
                log.warning("engine %s: replica failed: %s", self.name, failure)
                continue
            raise BadRequestError(f"the engine refused the request: {detail}")
        if overloaded is not None:
            raise overloaded
        retry_after = self._pool.retry_after()
        raise EngineUnavailableError(
            f"engine {self.name} is unavailable ({failure}); please retry in {retry_after}s",
            retry_after=retry_after,
        )

    async def _stream_events(
        self, response: aiohttp.ClientResponse, call: ChatCall
    ) -> AsyncGenerator[ChatEvent, None]:
        reader = _ChoiceReader(call)
        final: dict[str, Any] | None = None
        async for line in _lines(response):
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            payload = orjson.loads(data)
            if "error" in payload:
                raise EngineUnavailableError(f"engine {self.name} failed: {payload['error']}")
            for choice in payload.get("choices") or ():
                for event in reader.delta(choice):
                    yield event
                if choice.get("usage"):  # Moonshot puts usage on the last choice
                    final = {"usage": choice["usage"]}
            if payload.get("usage"):
                final = payload
        if final is not None:
            yield _usage(final)
        if not reader.finished:
            raise EngineUnavailableError(
                f"engine {self.name} ended the stream before the reply was finished"
            )

    async def _message_events(
        self, payload: dict[str, Any], call: ChatCall
    ) -> AsyncGenerator[ChatEvent, None]:
        reader = _ChoiceReader(call)
        for choice in payload.get("choices") or ():
            for event in reader.message(choice):
                yield event
        if payload.get("usage"):
            yield _usage(payload)

    # -- tokens -----------------------------------------------------------------

    async def count_tokens(self, model_id: str, messages: list[dict[str, Any]]) -> int:
        """A named tokenizer's exact count, else the upstream's own where it has
        one, else an estimate calibrated on what it has billed."""
        if self._counter is not None:
            plain, tools = without_message_tools(messages)
            try:
                return self._counter.count(plain, tools or None)
            except ChatTemplateError as exc:
                raise BadRequestError(str(exc), param="messages") from exc
        try:
            return await self._count_tokens(model_id, messages)
        except LookupError as missing:  # e.g. an engine build without /tokenize
            log.warning("engine %s cannot count tokens (%s); estimating", self.name, missing)
            return self._estimate(model_id, messages)

    async def _count_tokens(self, model_id: str, messages: list[dict[str, Any]]) -> int:
        flavour = self._settings.flavour
        model = self.upstream_model(model_id)
        if flavour == "moonshot":
            payload = await self._post("/tokenizers/estimate-token-count", model, messages)
            return int(payload["data"]["total_tokens"])
        if flavour in ("vllm", "sglang"):
            payload = await self._post("/tokenize", model, messages, root=True)
            return int(payload.get("count", len(payload.get("tokens", ()))))
        if flavour == "llamacpp":
            rendered = await self._post("/apply-template", model, messages, root=True)
            tokens = await self._post_json("/tokenize", {"content": rendered["prompt"]}, True)
            return len(tokens["tokens"])
        return self._estimate(model_id, messages)

    def _estimate(self, model_id: str, messages: list[dict[str, Any]]) -> int:
        """Fitted to what the upstream has billed; before any request, the
        plain estimate (the calibration's prior: a token per word piece)."""
        calibration = self._calibrations.get(self.upstream_model(model_id))
        return (calibration or TemplateCalibration()).estimate(messages, None)

    def _learn(self, model: str, call: ChatCall, prompt_tokens: int) -> None:
        """Fit the estimate to what the upstream billed (text-only prompts without tools)."""
        if prompt_tokens <= 0:
            return
        calibration = self._calibrations.setdefault(model, TemplateCalibration())
        if not calibration.due():  # on every request's path: a sample is enough
            return
        messages = call.body.get("messages") or []
        # Media are counted apart, and templates render tools in ways of their
        # own (a block of instructions around the schemas): neither teaches
        # the fit what plain conversations cost.
        if call.body.get("tools") or any(
            _has_media(message) or message.get("tools") for message in messages
        ):
            return
        calibration.observe(messages, None, prompt_tokens)

    async def _post(
        self, path: str, model: str, messages: list[dict[str, Any]], root: bool = False
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "messages": messages}
        if self._settings.flavour != "moonshot":
            body["messages"], tools = without_message_tools(messages)
            if tools:
                body["tools"] = tools
        return await self._post_json(path, body, root)

    async def _post_json(self, path: str, body: dict[str, Any], root: bool) -> dict[str, Any]:
        replica, response = await self._open(path, body, root)
        try:
            return dict(json.loads(await response.read()))
        finally:
            replica.in_flight -= 1
            response.release()

    # -- health -----------------------------------------------------------------

    def _start_monitor(self) -> None:
        if self._monitor is None or self._monitor.done():
            self._monitor = asyncio.create_task(self._watch(), name=f"health-{self.name}")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._settings.health_interval_s)
            await asyncio.gather(*(self._probe(replica) for replica in self._pool.replicas))

    async def _probe(self, replica: Replica) -> None:
        """Ejected replicas come back, and silent deaths are noticed, between requests."""
        try:
            timeout = aiohttp.ClientTimeout(total=self._settings.connect_timeout_s)
            async with self._client().get(replica.url + "/models", timeout=timeout) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._pool.failed(replica, f"health check: {_describe(exc)}")
            return
        if status == 200:
            self._pool.recovered(replica)
        else:
            self._pool.failed(replica, f"health check: HTTP {status}")

    async def health(self) -> EngineHealth:
        self._start_monitor()
        replicas = self._pool.status()
        healthy = sum(bool(replica["healthy"]) for replica in replicas)
        return EngineHealth(
            ready=healthy > 0,
            active=sum(replica.in_flight for replica in self._pool.replicas),
            healthy_replicas=healthy,
            details={
                "kind": "upstream",
                "flavour": self._settings.flavour,
                "ready": healthy > 0,
                "replicas": replicas,
            },
        )

    async def close(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        if self._session is not None:
            await self._session.close()


class _ChoiceReader:
    """Per-choice state while reading an upstream's answer."""

    def __init__(self, call: ChatCall) -> None:
        self._call = call
        self._produced: dict[int, int] = {}
        self._calls: dict[int, dict[int, dict[str, str]]] = {}
        self._finished: set[int] = set()

    @property
    def finished(self) -> bool:
        return len(self._finished) >= self._call.n

    def delta(self, choice: dict[str, Any]) -> list[ChatEvent]:
        index = int(choice.get("index", 0))
        delta = choice.get("delta") or {}
        events = self._text(index, delta)
        for part in delta.get("tool_calls") or ():
            slot = self._calls.setdefault(index, {}).setdefault(
                int(part.get("index", 0)), {"name": "", "arguments": ""}
            )
            function = part.get("function") or {}
            if function.get("name") and not slot["name"]:
                slot["name"] = function["name"]
            slot["arguments"] += function.get("arguments") or ""
        if choice.get("finish_reason"):
            events.extend(self._finish(index, choice["finish_reason"], _stop_string(choice)))
        return events

    def message(self, choice: dict[str, Any]) -> list[ChatEvent]:
        index = int(choice.get("index", 0))
        message = choice.get("message") or {}
        events = self._text(index, message)
        for position, call in enumerate(message.get("tool_calls") or ()):
            function = call.get("function") or {}
            self._calls.setdefault(index, {})[position] = {
                "name": function.get("name", ""),
                "arguments": function.get("arguments") or "",
            }
        events.extend(
            self._finish(index, choice.get("finish_reason") or "stop", _stop_string(choice))
        )
        return events

    def _text(self, index: int, delta: dict[str, Any]) -> list[ChatEvent]:
        events: list[ChatEvent] = []
        reasoning = reasoning_of(delta)
        if reasoning:
            events.append(ReasoningDelta(index, reasoning, self._count(index)))
        content = delta.get("content")
        if isinstance(content, str) and content:
            events.append(TextDelta(index, content, self._count(index)))
        return events

    def _count(self, index: int) -> int:
        # About a token per chunk, until the engine's usage says exactly.
        self._produced[index] = self._produced.get(index, 0) + 1
        return 1

    def _finish(self, index: int, reason: str, stop: str | None) -> list[ChatEvent]:
        events: list[ChatEvent] = []
        calls = self._calls.pop(index, {})
        if calls:
            first = self._call.first_call_index
            events.append(
                ToolCallsMade(
                    index,
                    tuple(
                        {
                            "id": tool_call_id(call["name"], first + offset),
                            "type": "function",
                            "function": {"name": call["name"], "arguments": call["arguments"]},
                        }
                        for offset, (_, call) in enumerate(sorted(calls.items()))
                    ),
                )
            )
        self._finished.add(index)
        finish: FinishReason = "length" if reason == "length" else "stop"
        events.append(ChoiceFinished(index, finish, self._produced.get(index, 0), stop))
        return events


def _has_media(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(part, dict) and part.get("type") != "text" for part in content
    )


def _usage(payload: dict[str, Any]) -> UsageReported:
    usage = payload["usage"]
    return UsageReported(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        cached_tokens=cached_tokens_of(payload),
    )


def _seconds(retry_after: str | None) -> int:
    """An upstream's Retry-After in whole seconds (1 unless it sent a number:
    an HTTP date from a proxy is not worth parsing for a hint)."""
    seconds = whole_number(retry_after.strip(), max_digits=9) if retry_after else None
    return max(1, seconds or 1)


async def _lines(response: aiohttp.ClientResponse) -> AsyncGenerator[bytes, None]:
    """The body's lines as they arrive, however long (an SSE event can be large)."""
    pending = b""
    async for data in response.content.iter_any():
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line
    if pending:
        yield pending


async def _error_detail(response: aiohttp.ClientResponse) -> str:
    """The upstream's own error message, short."""
    raw = await response.read()
    response.release()
    try:
        error = json.loads(raw).get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = None
    text = str(message or raw.decode("utf-8", "replace") or response.reason)
    return f"HTTP {response.status}: {text[:300]}"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _stop_string(choice: dict[str, Any]) -> str | None:
    """The stop string that ended a choice: vLLM and SGLang name it in
    ``stop_reason`` (a token id when a stop token ended it)."""
    reason = choice.get("stop_reason")
    return reason if isinstance(reason, str) and choice.get("finish_reason") == "stop" else None
