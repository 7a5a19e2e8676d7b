"""Replicas of one upstream deployment: which one takes the next request.

Least outstanding requests: a request goes to the replica with the fewest in
flight from this process, ties taken in turn, so a slow replica (a long
prompt, a busy GPU) gets less. A replica that fails (refused connection,
timeout before the first byte, a 5xx) is ejected for a while that doubles
while it keeps failing; the health check brings it back as soon as it
answers. When every replica is ejected the caller learns it at once (no
waiting on a dead host) and when to retry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass


@dataclass
class Replica:
    url: str  # base URL with the API prefix, without a trailing slash
    in_flight: int = 0
    failures: int = 0  # consecutive
    ejected_until: float = 0.0
    last_error: str | None = None
    served: int = 0

    def available(self, now: float) -> bool:
        return self.ejected_until <= now


class ReplicaPool:
    def __init__(
        self,
        urls: list[str],
        eject_s: float,
        max_eject_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.replicas = [Replica(url.rstrip("/")) for url in urls]
        self._eject_s = eject_s
        self._max_eject_s = max_eject_s
        self._clock = clock
        self._turn = 0

    def pick(self, exclude: Collection[str] = ()) -> Replica | None:
        """The available replica with the fewest requests in flight, or None."""
        now = self._clock()
        count = len(self.replicas)
        best: Replica | None = None
        for offset in range(count):
            replica = self.replicas[(self._turn + offset) % count]
            if replica.url in exclude or not replica.available(now):
                continue
            if best is None or replica.in_flight < best.in_flight:
                best = replica
        self._turn = (self._turn + 1) % count
        return best

    def retry_after(self) -> int:
        """Whole seconds until the first ejected replica is tried again."""
        now = self._clock()
        soonest = min(replica.ejected_until for replica in self.replicas)
        return max(1, int(soonest - now + 0.999))

    def failed(self, replica: Replica, error: str) -> None:
        replica.failures += 1
        replica.last_error = error
        hold = min(self._eject_s * 2 ** (replica.failures - 1), self._max_eject_s)
        replica.ejected_until = self._clock() + hold

    def succeeded(self, replica: Replica) -> None:
        replica.served += 1
        self.recovered(replica)

    def recovered(self, replica: Replica) -> None:
        if replica.failures or replica.ejected_until:
            replica.failures = 0
            replica.ejected_until = 0.0
            replica.last_error = None

    def status(self) -> list[dict[str, object]]:
        now = self._clock()
        return [
            {
                "url": replica.url,
                "healthy": replica.available(now),
                "in_flight": replica.in_flight,
                "served": replica.served,
                "last_error": replica.last_error,
            }
            for replica in self.replicas
        ]
