"""The embedded engine: llama.cpp on the CPU, continuously batched.

This module is the engine protocol's face on the event loop: prompt
rendering and the bridge to the scheduler thread (scheduler.py), which owns
the llama.cpp context. A full queue is a 429, not an unbounded wait; a job
whose consumer went away (client disconnect, cancelled task) leaves the batch
at the next step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncGenerator
from pathlib import Path

import llama_cpp
from llama_cpp import _internals, _logger

from moonbase.engines.base import (
    ChatTurn,
    EngineCapabilities,
    EngineEvent,
    EngineHealth,
    GenerationRequest,
    JsonConstraint,
)
from moonbase.engines.chat_template import ChatTemplate
from moonbase.engines.llamacpp.grammar import Grammar, grammar_for
from moonbase.engines.llamacpp.json_grammar import GrammarError, JsonBounds
from moonbase.engines.llamacpp.model_file import resolve_model_path
from moonbase.engines.llamacpp.prompt_tokenizer import PromptTokenizer, probe_prompt
from moonbase.engines.llamacpp.sampler import compile_grammar
from moonbase.engines.llamacpp.scheduler import END, Job, Scheduler, Step
from moonbase.errors import BadRequestError
from moonbase.settings import EngineSettings

log = logging.getLogger(__name__)


class LlamaCppEngine:
    """One GGUF model, one llama.cpp context shared by ``slots`` sequences."""

    def __init__(self, settings: EngineSettings, model_cache: Path | None = None) -> None:
        # An hf:// model is fetched into model_cache (<data_dir>/models) if it is not there.
        self.model_path = resolve_model_path(settings.model, model_cache)
        _logger.set_verbose(False)  # llama.cpp's own log: errors only
        self._model = _internals.LlamaModel(
            path_model=str(self.model_path),
            params=llama_cpp.llama_model_default_params(),
            verbose=False,
        )
        threads = settings.n_threads or os.cpu_count() or 1
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = settings.n_ctx
        params.n_batch = params.n_ubatch = settings.n_batch
        params.n_seq_max = settings.slots
        params.kv_unified = True  # every slot may use the whole context
        params.n_threads = params.n_threads_batch = threads
        params.no_perf = True
        self._context = _internals.LlamaContext(model=self._model, params=params, verbose=False)
        metadata = self._model.metadata()
        self._add_bos = metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
        self._bos = self._model.token_bos()
        self._template = ChatTemplate(
            metadata.get("tokenizer.chat_template"),
            bos_token=self._model.token_get_text(self._bos) if self._bos >= 0 else "",
            eos_token=self._model.token_get_text(self._model.token_eos()),
        )
        self._tokenizer = PromptTokenizer(
            self._model,
            probe_prompt(
                lambda turns: self._template.render([ChatTurn(role, text) for role, text in turns])
            ),
        )
        # Never report or accept more than the model was trained for.
        context = min(llama_cpp.llama_n_ctx(self._context.ctx), self._model.n_ctx_train())
        self._json_bounds = JsonBounds(
            max_string=settings.json_max_string_chars,
            max_items=settings.json_max_items,
            max_depth=settings.json_max_depth,
        )
        self._capabilities = EngineCapabilities(
            context_length=context,
            model_name=metadata.get("general.name", self.model_path.stem),
            native_reasoning=self._template.reasons_natively,
            reasoning_starts_open=self._template.opens_reasoning(),
            tool_format=self._template.tool_format,
        )
        self._scheduler = Scheduler(
            self._context.ctx,
            self._model.vocab,
            self._model.n_vocab(),
            slots=settings.slots,
            n_ctx=llama_cpp.llama_n_ctx(self._context.ctx),
            n_batch=settings.n_batch,
            prefill_share=settings.prefill_share,
            prefix_cache_bytes=settings.prefix_cache_mb * 2**20,
            prefix_cache_max_age_s=settings.prefix_cache_max_age_s,
            max_queued=settings.max_queued,
        )

    # -- the engine protocol -------------------------------------------------

    @property
    def capabilities(self) -> EngineCapabilities:
        return self._capabilities

    async def render_prompt(
        self, turns: list[ChatTurn], assistant_prefix: str | None = None
    ) -> tuple[int, ...]:
        return await asyncio.to_thread(self.render_prompt_sync, turns, assistant_prefix)

    def render_prompt_sync(
        self, turns: list[ChatTurn], assistant_prefix: str | None = None
    ) -> tuple[int, ...]:
        text = self._template.render(turns) + (assistant_prefix or "")
        # Tokenizing only reads the vocabulary, so it is safe beside a running decode.
        tokens = self._tokenizer.tokenize(text)
        if self._add_bos and (not tokens or tokens[0] != self._bos):
            tokens.insert(0, self._bos)
        return tuple(tokens)

    def detokenize(self, tokens: list[int]) -> str:
        """Text of ``tokens``, special tokens included (for tests and debugging)."""
        return self._model.detokenize(tokens, special=True).decode("utf-8", errors="replace")

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[EngineEvent, None]:
        job = Job(request, asyncio.get_running_loop())
        if request.constraint is not None:
            job.grammar = await asyncio.to_thread(self._grammar_for, request.constraint)
            if job.grammar is None:
                log.warning(
                    "%s: no grammar for these tools; calls under auto are free text",
                    request.request_id,
                )
        self._scheduler.submit(job)
        try:
            while True:
                item = await job.events.get()
                if item is END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            job.cancelled.set()

    def _grammar_for(self, constraint: JsonConstraint) -> Grammar | None:
        """The constraint's grammar, proven to compile before it reaches the scheduler.

        A lazy one (calls under tool_choice "auto") that cannot be built, for
        a tool declared ``strict: false`` with a schema beyond the grammar, is
        None: the model still decides freely, as it would without one."""
        try:
            grammar = grammar_for(constraint, self._json_bounds)
            llama_cpp.llama_sampler_free(compile_grammar(self._model.vocab, grammar))
        except GrammarError as exc:
            if constraint.opening is not None:
                return None
            raise BadRequestError(str(exc), param="response_format") from exc
        return grammar

    def recent_steps(self) -> list[Step]:
        """The scheduler's last decoded batches (for tests and diagnostics)."""
        return self._scheduler.recent_steps()

    async def health(self) -> EngineHealth:
        alive = self._scheduler.alive
        stats = self._scheduler.stats()
        return EngineHealth(
            ready=alive,
            active=stats["active_sequences"],
            queued=stats["queued"],
            details={
                "status": "ok" if alive else "dead",
                "model": self._capabilities.model_name,
                **stats,
            },
        )

    async def close(self) -> None:
        await asyncio.to_thread(self._scheduler.stop)
        with contextlib.suppress(Exception):
            self._context.close()
            self._model.close()
