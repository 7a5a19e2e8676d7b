"""Idle sequences' KV cells, parked in host memory.

Attention spans every occupied cell of the unified KV cache, so cells kept
for prefix reuse by idle slots slow every later prompt: measured here, a cold
1,100-token prompt took 5.4 s with an empty cache and 8.0-9.1 s after eight
streams had left 2,360 cells behind. llama-server avoids that by saving idle
slots to host memory and clearing them; the scheduler does the same with this
cache. A parked prefix costs a copy out (at the next admission) and a copy
back in (on a hit), a few microseconds per cell against milliseconds per
prompt token re-read.

The cache is bounded by bytes (what it costs the host: a cell's size depends
on the model) and by age; the least recently used prefix leaves first, and a
prefix that a newer one extends is dropped as soon as the newer one is parked
(the newer serves every prompt the older did).
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from dataclasses import dataclass
from time import monotonic  # by name, so a test can hold the cache's clock
from typing import Any

import llama_cpp

# A parked prefix is restored only to reuse at least this many tokens: below
# that, re-reading the prompt costs about as much as the copy.
MIN_REUSE = 16


def common_prefix(a: list[int] | tuple[int, ...], b: list[int] | tuple[int, ...]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass
class Parked:
    tokens: tuple[int, ...]
    state: Any  # a ctypes byte array: llama_state_seq_get_data's output
    cache_key: str | None


@dataclass(frozen=True)
class Hit:
    entry: Parked
    reuse: int  # prompt tokens the entry holds


class PrefixCache:
    """Parked KV sequences, least recently used first.

    Used by the scheduler thread only; ``stats`` reads plain counters, so the
    event loop may call it at any time.
    """

    def __init__(self, ctx: Any, *, max_bytes: int, max_age_s: float) -> None:
        self._ctx = ctx
        self._max_bytes = max_bytes
        self._max_age_s = max_age_s
        # id -> (entry, when it was parked); parking again is the only "use"
        self._entries: OrderedDict[int, tuple[Parked, float]] = OrderedDict()
        self._cells = 0
        self._bytes = 0
        self._next_id = 0
        self._hits = 0
        self._restored_tokens = 0

    # -- what the scheduler asks -------------------------------------------------

    def park(self, seq_id: int, tokens: list[int], cache_key: str | None) -> bool:
        """Copy ``seq_id``'s cells out; False when they do not fit the bound."""
        if not tokens:
            return False
        size = llama_cpp.llama_state_seq_get_size(self._ctx, seq_id)
        if size > self._max_bytes:
            return False
        state = (ctypes.c_uint8 * size)()
        if llama_cpp.llama_state_seq_get_data(self._ctx, state, size, seq_id) != size:
            return False
        parked = tuple(tokens)
        for key, (entry, _) in list(self._entries.items()):
            # The new prefix serves every prompt this one did (and a duplicate is just older).
            if len(entry.tokens) <= len(parked) and parked[: len(entry.tokens)] == entry.tokens:
                self._drop(key)
        self._entries[self._next_id] = (Parked(parked, state, cache_key), monotonic())
        self._next_id += 1
        self._cells += len(parked)
        self._bytes += size
        self._trim()
        return True

    def take(self, prompt: tuple[int, ...], cache_key: str | None, beyond: int) -> Hit | None:
        """Remove and return the parked prefix sharing the most of ``prompt``, if it
        shares more than ``beyond`` tokens (a matching cache key breaks ties)."""
        self.expire()
        found: tuple[tuple[int, bool], int, Hit] | None = None  # (rank, key, hit)
        for key, (entry, _) in self._entries.items():
            reuse = common_prefix(entry.tokens, prompt)
            if reuse <= beyond or reuse < MIN_REUSE:
                continue
            rank = (reuse, entry.cache_key is not None and entry.cache_key == cache_key)
            if found is None or rank > found[0]:
                found = (rank, key, Hit(entry, reuse))
        if found is None:
            return None
        self._drop(found[1])
        return found[2]

    def restore(self, hit: Hit, seq_id: int) -> bool:
        """Copy a taken prefix into the (empty) ``seq_id``."""
        state = hit.entry.state
        if llama_cpp.llama_state_seq_set_data(self._ctx, state, len(state), seq_id) == 0:
            return False  # no room for its cells: the caller reads the prompt instead
        self._hits += 1
        self._restored_tokens += hit.reuse
        return True

    def expire(self) -> None:
        """Drop prefixes unused for longer than the age bound."""
        horizon = monotonic() - self._max_age_s
        while self._entries:
            key, (_, used_at) = next(iter(self._entries.items()))
            if used_at > horizon:
                return
            self._drop(key)

    def stats(self) -> dict[str, int]:
        return {
            "prefix_cache_entries": len(self._entries),
            "prefix_cache_cells": self._cells,
            "prefix_cache_bytes": self._bytes,
            "prefix_cache_hits": self._hits,
            "prefix_cache_restored_tokens": self._restored_tokens,
        }

    # -- bookkeeping ----------------------------------------------------------------

    def _drop(self, key: int) -> None:
        entry, _ = self._entries.pop(key)
        self._cells -= len(entry.tokens)
        self._bytes -= len(entry.state)

    def _trim(self) -> None:
        while self._bytes > self._max_bytes:
            self._drop(next(iter(self._entries)))
