"""API keys checked from memory on the hot path.

Looking a key up costs a database read; a request should not. A key's owner
is remembered for ``ttl_s`` (unknown keys for a shorter while, so a typo
cannot hammer the database either). Revoking a key therefore takes effect
within ``ttl_s`` on every gateway; this gateway forgets it at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from moonbase.store.database import Database
from moonbase.store.repositories import api_keys
from moonbase.store.repositories.api_keys import KeyOwner, hash_key

UNKNOWN_TTL_S = 1.0
MAX_ENTRIES = 100_000


class KeyCache:
    def __init__(
        self, db: Database, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._db = db
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[str, tuple[KeyOwner | None, float]] = {}  # hash -> owner, expiry

    async def owner(self, secret: str) -> KeyOwner | None:
        digest = hash_key(secret)
        now = self._clock()
        cached = self._entries.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        async with self._db.read() as session:
            owner = await api_keys.authenticate(session, secret)
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()  # a flood of random keys: start over, never grow unbounded
        self._entries[digest] = (owner, now + (self._ttl_s if owner else UNKNOWN_TTL_S))
        return owner

    def forget_key(self, key_id: str) -> None:
        """A key was revoked here: stop accepting it now, not after the TTL."""
        for digest, (owner, _) in list(self._entries.items()):
            if owner is not None and owner.key_id == key_id:
                del self._entries[digest]
