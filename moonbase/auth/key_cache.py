"""API keys checked from memory on the hot path.

Looking a key up costs a database read; a request should not. A key's owner
is remembered for ``ttl_s`` (unknown keys for a shorter while, so a typo
cannot hammer the database either). Revoking a key therefore takes effect
within ``ttl_s`` on every gateway; this gateway forgets it at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from moonbase.auth.caller import KeyOwner
from moonbase.store.database import Database
from moonbase.store.repositories import api_keys
from moonbase.store.repositories.api_keys import hash_key
from moonbase.ttl_cache import TtlCache

UNKNOWN_TTL_S = 1.0


class KeyCache:
    def __init__(
        self, db: Database, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._db = db
        self._owners: TtlCache[str, KeyOwner | None] = TtlCache(
            lambda owner: ttl_s if owner is not None else UNKNOWN_TTL_S, clock
        )

    async def owner(self, secret: str) -> KeyOwner | None:
        async def look_up() -> KeyOwner | None:
            async with self._db.read() as session:
                return await api_keys.authenticate(session, secret)

        # Kept by the key's hash: the secret itself is never held.
        return await self._owners.get(hash_key(secret), look_up)

    def forget_key(self, key_id: str) -> None:
        """A key was revoked here: stop accepting it now, not after the TTL."""
        self._owners.discard_where(lambda owner: owner is not None and owner.key_id == key_id)
