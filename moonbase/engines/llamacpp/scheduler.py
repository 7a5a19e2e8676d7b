"""Continuous batching over one llama.cpp context, run by one thread.

Every step builds one ``llama_decode`` batch: the next token of every
generating sequence, plus a chunk of prompt tokens from sequences still
reading their prompt, sized by prefill_budget.py (the whole batch for a prompt
alone, a measured share of the step beside running streams, so a long prompt
never stalls them). New requests join at the next step; finished or abandoned
ones leave.

A slot that goes idle keeps the KV cells of what it last held until the next
admission, which parks every idle slot it does not use in the host-memory
prefix cache (prefix_cache.py), so the KV cache holds running work only. A new
request takes the free slot, or the parked prefix, holding the longest common
prefix of its prompt (a matching ``prompt_cache_key`` breaks ties) and decodes
only the rest. ``n`` choices decode the prompt once on a lead slot and copy
its KV to the other choices' slots.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import llama_cpp

from moonbase.engines.base import (
    ChoiceFinished,
    FinishReason,
    GenerationRequest,
    PromptProcessed,
    TextDelta,
)
from moonbase.engines.llamacpp.grammar import Grammar
from moonbase.engines.llamacpp.prefill_budget import PrefillBudget
from moonbase.engines.llamacpp.prefix_cache import PrefixCache, common_prefix
from moonbase.engines.llamacpp.sampler import PieceTable, SamplerChain
from moonbase.engines.stop import StopMatcher, Utf8Stream
from moonbase.errors import EngineOverloadedError

log = logging.getLogger(__name__)

END = object()  # the last item a job's event queue receives


@dataclass
class Job:
    """A request crossing from the event loop to the scheduler thread."""

    request: GenerationRequest
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    cached_tokens: int = 0  # prompt tokens found in a slot's KV cache
    grammar: Grammar | None = None  # what the output must follow, compiled before submission

    def emit(self, item: object) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancelled.set()

    @property
    def kv_need(self) -> int:
        """KV cells the job may fill: the shared prompt plus each choice's output."""
        return len(self.request.prompt_tokens) + self.request.n * self.request.max_tokens


@dataclass
class Slot:
    seq_id: int
    tokens: list[int] = field(default_factory=list)  # what its KV cells hold, from position 0
    cache_key: str | None = None
    last_used: int = 0
    busy: bool = False


@dataclass
class Sequence:
    """One choice of one job, decoding on one slot."""

    job: Job
    index: int
    slot: Slot
    sampler: SamplerChain
    pending: list[int] = field(default_factory=list)  # prompt tokens still to decode
    followers: list[Sequence] = field(default_factory=list)  # choices waiting on our prompt
    next_token: int | None = None  # sampled, not yet decoded
    produced: int = 0
    unreported: int = 0  # tokens produced since the last TextDelta
    matcher: StopMatcher = field(default_factory=lambda: StopMatcher(()))
    utf8: Utf8Stream = field(default_factory=Utf8Stream)


@dataclass
class _JobState:
    job: Job
    sequences: list[Sequence]
    open_choices: int
    next_choice: int  # choices beyond the free slots start as earlier ones finish
    prompt_reported: bool = False


class Inbox:
    """The bounded line of jobs waiting for the scheduler.

    A job stays in the line until it is admitted, so the bound is exactly the
    number of requests waiting.
    """

    def __init__(self, limit: int) -> None:
        self._jobs: deque[Job] = deque()
        self._limit = limit
        self._ready = threading.Condition()

    def put(self, job: Job) -> None:
        with self._ready:
            if len(self._jobs) >= self._limit:
                raise EngineOverloadedError(
                    "The engine is overloaded, please try again later",
                    retry_after=1,
                )
            self._jobs.append(job)
            self._ready.notify()

    def head(self) -> Job | None:
        with self._ready:
            return self._jobs[0] if self._jobs else None

    def pop_head(self) -> None:
        with self._ready:
            self._jobs.popleft()

    def wait(self, timeout: float) -> None:
        with self._ready:
            if not self._jobs:
                self._ready.wait(timeout)

    def __len__(self) -> int:
        return len(self._jobs)


@dataclass(frozen=True)
class Step:
    """What one decoded batch held (the scheduler keeps the last ``STEP_HISTORY``)."""

    number: int  # counts every step since the engine started
    generating: int  # stream tokens: one for every generating sequence
    prompt_tokens: int


STEP_HISTORY = 4096


class Scheduler:
    def __init__(
        self,
        ctx: Any,
        vocab: Any,
        n_vocab: int,
        *,
        slots: int,
        n_ctx: int,
        n_batch: int,
        prefill_share: float,
        prefix_cache_bytes: int,
        prefix_cache_max_age_s: float,
        max_queued: int,
    ) -> None:
        self._ctx = ctx
        self._memory = llama_cpp.llama_get_memory(ctx)
        self._vocab = vocab
        self._n_vocab = n_vocab
        self._n_ctx = n_ctx
        self._n_batch = n_batch
        self._budget = PrefillBudget(n_batch, prefill_share)
        self._parked = PrefixCache(
            ctx, max_bytes=prefix_cache_bytes, max_age_s=prefix_cache_max_age_s
        )
        self._pieces = PieceTable(vocab)
        self._slots = [Slot(seq_id) for seq_id in range(slots)]
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self.inbox = Inbox(max_queued)
        self._active: dict[int, _JobState] = {}  # id(job) -> state
        self._step_no = 0
        self._prompt_tokens_decoded = 0  # for tests and /health: what prefill really cost
        self._steps: deque[Step] = deque(maxlen=STEP_HISTORY)
        self._largest_chunk_beside_streams = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llamacpp-scheduler", daemon=True)
        self._thread.start()

    # -- called from the event loop --------------------------------------------

    def submit(self, job: Job) -> None:
        self.inbox.put(job)

    def stats(self) -> dict[str, int]:
        return {
            "queued": len(self.inbox),
            "active_sequences": sum(slot.busy for slot in self._slots),
            "slots": len(self._slots),
            "prompt_tokens_decoded": self._prompt_tokens_decoded,
            "idle_cells": sum(len(slot.tokens) for slot in self._slots if not slot.busy),
            "largest_prompt_chunk_beside_streams": self._largest_chunk_beside_streams,
            **self._parked.stats(),
        }

    def recent_steps(self) -> list[Step]:
        """The last decoded batches, oldest first (for tests and diagnostics)."""
        return list(self._steps)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        llama_cpp.llama_batch_free(self._batch)

    # -- the scheduler thread ----------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self._active:
                    self._parked.expire()
                    self.inbox.wait(timeout=0.2)
                self._drop_cancelled()
                self._admit()
                self._step()
            except Exception as exc:  # a bug or a llama.cpp failure: fail the work, keep serving
                log.exception("embedded engine step failed")
                for state in list(self._active.values()):
                    state.job.emit(exc)
                    self._finish_job(state)
        for state in list(self._active.values()):
            self._finish_job(state)

    def _drop_cancelled(self) -> None:
        for state in list(self._active.values()):
            if state.job.cancelled.is_set():
                self._finish_job(state)

    def _admit(self) -> None:
        while (job := self.inbox.head()) is not None:
            if job.cancelled.is_set():
                self.inbox.pop_head()
                job.emit(END)
                continue
            free = [slot for slot in self._slots if not slot.busy]
            n = job.request.n
            reserved = sum(s.job.kv_need for s in self._active.values())
            if len(free) < min(n, len(self._slots)) or (
                self._active and reserved + job.kv_need > self._n_ctx
            ):
                return  # wait for running work to leave
            self.inbox.pop_head()
            self._start(job, free)

    def _start(self, job: Job, free: list[Slot]) -> None:
        request = job.request
        prompt = request.prompt_tokens
        lead = max(
            free,
            key=lambda s: (
                common_prefix(s.tokens, prompt) > 0 and s.cache_key == request.cache_key,
                common_prefix(s.tokens, prompt),
                -s.last_used,
            ),
        )
        in_kv = common_prefix(lead.tokens, prompt)
        hit = self._parked.take(prompt, request.cache_key, beyond=in_kv)
        if hit is not None:  # a parked prefix beats every slot: restore it on the emptiest
            lead = min(free, key=lambda s: len(s.tokens))
        # Attention spans every occupied cell, so idle slots go to host memory.
        for slot in free:
            if slot is not lead or hit is not None:
                self._park(slot)
            elif 2 * in_kv < len(slot.tokens):  # another conversation: keep a copy of it
                self._park(slot, keep=in_kv)
        if hit is not None:
            if self._parked.restore(hit, lead.seq_id):
                lead.tokens = list(hit.entry.tokens)
            else:  # no room for its cells after all: read the whole prompt
                llama_cpp.llama_memory_seq_rm(self._memory, lead.seq_id, 0, -1)
        others = sorted((s for s in free if s is not lead), key=lambda s: len(s.tokens))
        chosen = [lead, *others[: request.n - 1]]  # fewer than n when n > slots
        # Keep at least one prompt token to decode: its logits start the reply.
        reuse = min(common_prefix(lead.tokens, prompt), len(prompt) - 1)
        llama_cpp.llama_memory_seq_rm(self._memory, lead.seq_id, reuse, -1)
        del lead.tokens[reuse:]
        sequences = []
        for index, slot in enumerate(chosen):
            if slot is not lead:
                llama_cpp.llama_memory_seq_rm(self._memory, slot.seq_id, 0, -1)
                slot.tokens.clear()
            slot.busy, slot.cache_key = True, request.cache_key
            seed = None if request.sampling.seed is None else request.sampling.seed + index
            sequences.append(
                Sequence(
                    job=job,
                    index=index,
                    slot=slot,
                    sampler=self._sampler(job, seed),
                    matcher=StopMatcher(request.stop),
                )
            )
        sequences[0].pending = list(prompt[reuse:])
        sequences[0].followers = sequences[1:]
        job.cached_tokens = reuse
        self._active[id(job)] = _JobState(
            job, sequences, open_choices=request.n, next_choice=len(sequences)
        )

    def _sampler(self, job: Job, seed: int | None) -> SamplerChain:
        sampling = job.request.sampling
        return SamplerChain(sampling, self._n_vocab, seed, self._vocab, job.grammar)

    def _park(self, slot: Slot, keep: int = 0) -> None:
        """Copy an idle slot's cells to the prefix cache (dropped if they do not
        fit its bound) and free all but the first ``keep``."""
        if len(slot.tokens) <= keep:
            return
        self._parked.park(slot.seq_id, slot.tokens, slot.cache_key)
        llama_cpp.llama_memory_seq_rm(self._memory, slot.seq_id, keep, -1)
        del slot.tokens[keep:]

    def _step(self) -> None:
        generating = [
            seq
            for state in self._active.values()
            for seq in state.sequences
            if seq.next_token is not None
        ]
        # Shortest first, as vLLM lets short prefills pass long ones: a chat
        # turn starts at once instead of waiting for a document to be read.
        prefilling = sorted(
            (seq for state in self._active.values() for seq in state.sequences if seq.pending),
            key=lambda seq: len(seq.pending),
        )
        batch = self._batch
        rows: list[tuple[int, Sequence, bool]] = []  # (batch row, sequence, ends its prompt)
        added: list[tuple[Sequence, list[int]]] = []
        n = 0
        for seq in generating:
            token = seq.next_token
            assert token is not None
            self._put(n, token, len(seq.slot.tokens), seq.slot.seq_id, logits=True)
            rows.append((n, seq, False))
            added.append((seq, [token]))
            n += 1
        budget = self._budget.tokens(n) if prefilling else 0
        for seq in prefilling:
            if budget <= 0:
                break
            chunk = seq.pending[:budget]
            ends = len(chunk) == len(seq.pending)
            base = len(seq.slot.tokens)
            for offset, token in enumerate(chunk):
                last = ends and offset == len(chunk) - 1
                self._put(n, token, base + offset, seq.slot.seq_id, logits=last)
                if last:
                    rows.append((n, seq, True))
                n += 1
            added.append((seq, chunk))
            budget -= len(chunk)
            self._prompt_tokens_decoded += len(chunk)
        if n == 0:
            return
        started = time.perf_counter()
        batch.n_tokens = n
        result = llama_cpp.llama_decode(self._ctx, batch)
        if result != 0:
            self._decode_failed(result, added)
            return
        self._step_no += 1
        read = n - len(generating)
        self._steps.append(Step(self._step_no, len(generating), read))
        if generating:
            self._largest_chunk_beside_streams = max(self._largest_chunk_beside_streams, read)
        for seq, tokens in added:
            seq.slot.tokens.extend(tokens)
            if seq.next_token is not None and tokens == [seq.next_token]:
                seq.next_token = None
            else:
                del seq.pending[: len(tokens)]
        for row, seq, ends_prompt in rows:
            if ends_prompt:
                self._prompt_done(seq)
                for follower in seq.followers:
                    self._accept(follower, follower.sampler.sample(self._ctx, row))
            self._accept(seq, seq.sampler.sample(self._ctx, row))
        # Sampling is part of what a step costs the streams.
        self._budget.observe(time.perf_counter() - started, len(generating), read)

    def _put(self, row: int, token: int, pos: int, seq_id: int, *, logits: bool) -> None:
        batch = self._batch
        batch.token[row] = token
        batch.pos[row] = pos
        batch.n_seq_id[row] = 1
        batch.seq_id[row][0] = seq_id
        batch.logits[row] = logits

    def _prompt_done(self, lead: Sequence) -> None:
        job = lead.job
        state = self._active[id(job)]
        if not state.prompt_reported:
            state.prompt_reported = True
            job.emit(PromptProcessed(len(job.request.prompt_tokens), job.cached_tokens))
        for follower in lead.followers:
            llama_cpp.llama_memory_seq_cp(
                self._memory, lead.slot.seq_id, follower.slot.seq_id, 0, -1
            )
            follower.slot.tokens = list(lead.slot.tokens)

    def _accept(self, seq: Sequence, token: int) -> None:
        """Take one sampled token: stream its text, or end the choice."""
        job = seq.job
        if llama_cpp.llama_vocab_is_eog(self._vocab, token):
            self._end_choice(seq, "stop")
            return
        seq.produced += 1
        seq.unreported += 1
        text = seq.matcher.feed(seq.utf8.decode(self._pieces(token)))
        if text:
            job.emit(TextDelta(seq.index, text, seq.unreported))
            seq.unreported = 0
        if seq.matcher.stopped:
            self._end_choice(seq, "stop")
        elif seq.produced >= job.request.max_tokens:
            self._end_choice(seq, "length")
        else:
            seq.next_token = token

    def _end_choice(self, seq: Sequence, reason: FinishReason) -> None:
        tail = seq.matcher.feed(seq.utf8.flush()) + seq.matcher.flush()
        if seq.matcher.stopped:  # a stop string held back until the end completed
            reason = "stop"
        if tail:
            seq.job.emit(TextDelta(seq.index, tail, seq.unreported))
            seq.unreported = 0
        stop = seq.matcher.matched if seq.matcher.stopped else None
        seq.job.emit(ChoiceFinished(seq.index, reason, seq.produced, stop))
        seq.next_token = None
        self._release(seq)
        state = self._active.get(id(seq.job))
        if state is None:
            return
        state.open_choices -= 1
        if state.open_choices == 0:
            self._finish_job(state)
        elif state.next_choice < seq.job.request.n:
            self._restart_on(seq.slot, state)

    def _restart_on(self, slot: Slot, state: _JobState) -> None:
        """Start the next choice on a slot that holds the prompt: re-decode its last token."""
        request = state.job.request
        keep = len(request.prompt_tokens) - 1
        llama_cpp.llama_memory_seq_rm(self._memory, slot.seq_id, keep, -1)
        del slot.tokens[keep:]
        index = state.next_choice
        state.next_choice += 1
        seed = None if request.sampling.seed is None else request.sampling.seed + index
        slot.busy = True
        seq = Sequence(
            job=state.job,
            index=index,
            slot=slot,
            sampler=self._sampler(state.job, seed),
            matcher=StopMatcher(request.stop),
            pending=[request.prompt_tokens[-1]],
        )
        state.sequences.append(seq)

    def _release(self, seq: Sequence) -> None:
        seq.sampler.close()
        seq.slot.busy = False
        seq.slot.last_used = self._step_no

    def _finish_job(self, state: _JobState) -> None:
        for seq in state.sequences:
            if seq.slot.busy:
                self._release(seq)
        self._active.pop(id(state.job), None)
        state.job.emit(END)

    def _decode_failed(self, result: int, added: list[tuple[Sequence, list[int]]]) -> None:
        """No room in the KV cache (1), or a hard failure (anything else)."""
        # Undo whatever part of the batch reached the cache: a slot holds what it recorded.
        for seq, _ in added:
            llama_cpp.llama_memory_seq_rm(self._memory, seq.slot.seq_id, len(seq.slot.tokens), -1)
        if result == 1:
            if self._drop_idle_caches():
                return  # the next step retries with the room made
            # Still no room: give the newest job up; the others finish and free cells.
            newest = list(self._active.values())[-1]
            newest.job.emit(
                EngineOverloadedError(
                    "The engine ran out of KV cache space, please try again later",
                    retry_after=1,
                )
            )
            self._finish_job(newest)
            return
        error = RuntimeError(f"llama_decode failed with status {result}")
        for state in list(self._active.values()):
            state.job.emit(error)
            self._finish_job(state)

    def _drop_idle_caches(self) -> bool:
        dropped = False
        for slot in self._slots:
            if not slot.busy and slot.tokens:
                llama_cpp.llama_memory_seq_rm(self._memory, slot.seq_id, 0, -1)
                slot.tokens.clear()
                dropped = True
        return dropped
