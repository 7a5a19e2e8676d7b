"""A bounded in-memory cache whose entries expire, loading each missing key once.

What the hot path reads from the database instead of per request (API keys,
accounts' balances and limits): a miss loads the value, and however many
requests miss the same key together, one load runs and they all wait on it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_ENTRIES = 100_000


class TtlCache(Generic[K, V]):
    def __init__(
        self,
        ttl_of: Callable[[V], float],
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._ttl_of = ttl_of  # seconds a value stays fresh
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[K, tuple[V, float]] = {}  # key -> value, expiry
        self._loading: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        cached = self._entries.get(key)
        if cached is not None and cached[1] > self._clock():
            return cached[0]
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.ensure_future(self._load(key, load))
            self._loading[key] = loading
            loading.add_done_callback(lambda _: self._loading.pop(key, None))
        return await asyncio.shield(loading)

    async def _load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        value = await load()
        self.put(key, value)
        return value

    def put(self, key: K, value: V) -> None:
        """Take ``value`` as the fresh one (just read, or just committed)."""
        if len(self._entries) >= self._max_entries and key not in self._entries:
            self._entries.clear()  # a flood of distinct keys: start over, never grow unbounded
        self._entries[key] = (value, self._clock() + self._ttl_of(value))

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)

    def discard_where(self, stale: Callable[[V], bool]) -> None:
        for key, (value, _) in list(self._entries.items()):
            if stale(value):
                del self._entries[key]
