"""The embedded engine: llama.cpp on the CPU, owned by one worker thread.

llama.cpp contexts are not thread-safe and decoding holds the GIL only
briefly, so one thread owns the context and runs queued jobs; events cross to
the asyncio side with ``call_soon_threadsafe`` and the event loop never waits
on a decode. The queue is bounded: a full queue is a 429, not an unbounded
wait. A job whose consumer went away (client disconnect, cancelled task) is
dropped at the next token.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import random
import threading
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import llama_cpp

from moonbase.engines.base import (
    ChatTurn,
    ChoiceFinished,
    EngineCapabilities,
    EngineEvent,
    FinishReason,
    GenerationRequest,
    PromptProcessed,
    TextDelta,
)
from moonbase.engines.llamacpp.chat_template import ChatTemplate
from moonbase.engines.llamacpp.model_file import resolve_model_path
from moonbase.engines.stop import StopMatcher, Utf8Stream
from moonbase.errors import EngineOverloadedError
from moonbase.settings import EngineSettings

log = logging.getLogger(__name__)

_END = object()


@dataclass
class _Job:
    request: GenerationRequest
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def emit(self, item: object) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancelled.set()


class LlamaCppEngine:
    """One GGUF model, one llama.cpp context, one worker thread."""

    def __init__(self, settings: EngineSettings) -> None:
        self._settings = settings
        self.model_path = resolve_model_path(settings.model_path)
        self._llm = llama_cpp.Llama(
            model_path=str(self.model_path),
            n_ctx=settings.n_ctx,
            n_batch=settings.n_batch,
            n_threads=settings.n_threads or os.cpu_count() or 1,
            seed=settings.seed,
            verbose=False,
        )
        model = self._llm._model
        metadata = self._llm.metadata
        self._add_bos = metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
        self._bos = model.token_bos()
        self._template = ChatTemplate(
            metadata.get("tokenizer.chat_template"),
            bos_token=model.token_get_text(self._bos) if self._bos >= 0 else "",
            eos_token=model.token_get_text(model.token_eos()),
        )
        # Never report or accept more than the model was trained for.
        context = min(self._llm.n_ctx(), model.n_ctx_train())
        self._capabilities = EngineCapabilities(
            context_length=context, model_name=metadata.get("general.name", self.model_path.stem)
        )
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=settings.max_queued)
        self._worker = threading.Thread(target=self._run, name="llamacpp-engine", daemon=True)
        self._worker.start()

    # -- the engine protocol -------------------------------------------------

    @property
    def capabilities(self) -> EngineCapabilities:
        return self._capabilities

    async def render_prompt(self, turns: list[ChatTurn]) -> tuple[int, ...]:
        return await asyncio.to_thread(self.render_prompt_sync, turns)

    def render_prompt_sync(self, turns: list[ChatTurn]) -> tuple[int, ...]:
        text = self._template.render(turns)
        # Tokenizing only reads the vocabulary, so it is safe beside a running decode.
        tokens = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        if self._add_bos and (not tokens or tokens[0] != self._bos):
            tokens.insert(0, self._bos)
        return tuple(tokens)

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[EngineEvent, None]:
        job = _Job(request, asyncio.get_running_loop())
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            raise EngineOverloadedError(
                "The engine is overloaded, please try again later",
                headers={"retry-after": "1"},
            ) from None
        try:
            while True:
                item = await job.events.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            job.cancelled.set()

    async def health(self) -> dict[str, Any]:
        return {
            "status": "ok" if self._worker.is_alive() else "dead",
            "model": self._capabilities.model_name,
            "queued": self._jobs.qsize(),
        }

    async def close(self) -> None:
        self._jobs.put(None)
        await asyncio.to_thread(self._worker.join, 30)
        self._llm.close()

    # -- the worker thread ---------------------------------------------------

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            if job.cancelled.is_set():
                continue
            try:
                self._serve(job)
            except Exception as exc:  # reaches the request as an internal error
                log.exception("embedded engine failed on %s", job.request.request_id)
                job.emit(exc)
            finally:
                job.emit(_END)

    def _serve(self, job: _Job) -> None:
        request = job.request
        prompt = list(request.prompt_tokens)
        cached = self._reusable_prefix(prompt)
        for index in range(request.n):
            finished = self._generate_choice(job, prompt, index, cached if index == 0 else None)
            if finished is None:  # cancelled
                return
            job.emit(finished)

    def _reusable_prefix(self, prompt: list[int]) -> int:
        """Prompt tokens whose KV cells the next decode keeps (llama-cpp's prefix reuse)."""
        common = 0
        for held, wanted in zip(self._llm._input_ids[: self._llm.n_tokens], prompt, strict=False):
            if held != wanted:
                break
            common += 1
        # At least one prompt token is always decoded again, to refresh the logits.
        return min(common, len(prompt) - 1)

    def _generate_choice(
        self, job: _Job, prompt: list[int], index: int, cached: int | None
    ) -> ChoiceFinished | None:
        request, sampling = job.request, job.request.sampling
        seed = sampling.seed + index if sampling.seed is not None else random.getrandbits(32)
        self._llm.set_seed(seed)
        vocab = self._llm._model.vocab
        matcher, utf8 = StopMatcher(request.stop), Utf8Stream()
        finish: FinishReason = "length"
        produced = 0
        tokens = self._llm.generate(
            prompt,
            temp=sampling.temperature,
            top_p=sampling.top_p,
            top_k=0,
            min_p=0.0,
            typical_p=1.0,
            repeat_penalty=1.0,
            presence_penalty=sampling.presence_penalty,
            frequency_penalty=sampling.frequency_penalty,
        )
        try:
            for token in tokens:
                if cached is not None:  # the prompt has just been decoded
                    job.emit(PromptProcessed(len(prompt), cached))
                    cached = None
                if job.cancelled.is_set():
                    return None
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    finish = "stop"
                    break
                produced += 1
                text = matcher.feed(utf8.decode(self._llm.detokenize([token])))
                if text:
                    job.emit(TextDelta(index, text))
                if matcher.stopped:
                    finish = "stop"
                    break
                if produced >= request.max_tokens:
                    break
        finally:
            tokens.close()
        tail = matcher.feed(utf8.flush()) + matcher.flush()
        if tail:
            job.emit(TextDelta(index, tail))
        return ChoiceFinished(index, finish, produced)
