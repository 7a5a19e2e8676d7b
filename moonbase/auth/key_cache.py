"""API keys checked from memory on the hot path.

Looking a key up costs a database read; a request should not. A key's owner
is remembered for ``ttl_s`` (unknown keys for a shorter while, so a typo
cannot hammer the database either). Revoking a key therefore takes effect
within ``ttl_s`` on every gateway; this gateway forgets it at once. The
same holds for a change to a key's project (its model allowlist and rate
limits ride on the owner, loaded with the key).

When each key was last used is kept the same way: noted in memory per
request, written for all the keys used since in one transaction every
``key_last_used_interval_s`` (and at shutdown), never a write per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from moonbase.auth.caller import KeyOwner
from moonbase.store.database import Database
from moonbase.store.repositories import api_keys
from moonbase.store.repositories.api_keys import hash_key
from moonbase.ttl_cache import TtlCache

log = logging.getLogger(__name__)

UNKNOWN_TTL_S = 1.0


class KeyCache:
    def __init__(
        self, db: Database, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._db = db
        self._owners: TtlCache[str, KeyOwner | None] = TtlCache(
            lambda owner: ttl_s if owner is not None else UNKNOWN_TTL_S, clock
        )
        self._used: dict[str, datetime] = {}  # key id -> last use not yet written

    async def owner(self, secret: str) -> KeyOwner | None:
        async def look_up() -> KeyOwner | None:
            async with self._db.read() as session:
                return await api_keys.authenticate(session, secret)

        # Kept by the key's hash: the secret itself is never held.
        return await self._owners.get(hash_key(secret), look_up)

    def forget_key(self, key_id: str) -> None:
        """A key was revoked here: stop accepting it now, not after the TTL."""
        self._owners.discard_where(lambda owner: owner is not None and owner.key_id == key_id)

    def forget_project(self, project_id: str) -> None:
        """A project's allowlist or limits changed here: its keys' owners carry
        the old ones, so look them up again at their next request."""
        self._owners.discard_where(
            lambda owner: owner is not None and owner.project_id == project_id
        )

    def touch(self, key_id: str) -> None:
        """The key was used now (written with the next batch)."""
        self._used[key_id] = datetime.now(UTC)

    async def write_last_used(self) -> None:
        used, self._used = self._used, {}
        if not used:
            return
        try:
            async with self._db.transaction() as session:
                await api_keys.mark_used(session, used)
        except Exception:  # a database hiccup: the next batch carries them
            log.warning("could not record when %d keys were last used", len(used), exc_info=True)
            for key_id, when in used.items():
                self._used.setdefault(key_id, when)

    async def record_last_used(self, interval_s: float) -> None:
        """Write last-used times every ``interval_s`` until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(interval_s)
                await self.write_last_used()
        finally:
            await asyncio.shield(self.write_last_used())
