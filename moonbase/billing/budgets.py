"""Project budgets at admission: a project whose day's or month's spend has
reached its budget is refused (429 ``exceeded_current_quota_error``).

Like the balance, a budget is checked from memory. What a project has spent
this UTC day and month is read from its daily usage rollups (one indexed
range sum each) at most every ``refresh_s``; on top of that snapshot this process
counts what its own requests in flight may still cost (each holds its
maximum cost, as against the balance) and the charges it settled since just
before the snapshot was read (those may not have committed in time to be in
it: counting a few twice only refuses a moment early).

A project is let in while that total is below its budget, so requests in
flight together overshoot it by at most one request's maximum cost on one
gateway; with G gateways, each may also let in what the others spent within
``refresh_s``, so the overshoot is at most G requests' maximum costs plus
what the project spends in ``refresh_s``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from moonbase.billing.money import to_yuan
from moonbase.errors import QuotaExceededError
from moonbase.store.database import Database
from moonbase.store.repositories import projects
from moonbase.ttl_cache import TtlCache

# Charges settled this long before a snapshot may still have been waiting for
# the group commit when it was read (commit_interval_s, and a slow disk).
COMMIT_LAG_S = 5.0


@dataclass(frozen=True)
class Budgets:
    name: str
    daily_micro: int | None
    monthly_micro: int | None
    spent_day: int  # committed, when read
    spent_month: int
    day: str  # the UTC day and month the sums cover ("2026-12-03", "2026-12")
    month: str
    read_at: float  # time.time() of the read

    @property
    def unlimited(self) -> bool:
        return self.daily_micro is None and self.monthly_micro is None


@dataclass
class _Local:
    held: int = 0  # maximum costs of this process's requests in flight
    settled: deque[tuple[float, int]] = field(default_factory=deque)  # (time.time(), cost)

    def recent(self, since: float) -> int:
        return sum(cost for at, cost in self.settled if at >= since)

    def add_settled(self, cost: int) -> None:
        now = time.time()
        self.settled.append((now, cost))
        while self.settled[0][0] < now - 3600:  # an hour is beyond any snapshot's age
            self.settled.popleft()


class ProjectBudgets:
    def __init__(
        self, db: Database, refresh_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._db = db
        self._cache: TtlCache[str, Budgets] = TtlCache(lambda _: refresh_s, clock)
        self._local: dict[str, _Local] = {}

    async def _budgets(self, project_id: str) -> Budgets:
        async def load() -> Budgets:
            now = datetime.now(UTC)
            day = now.replace(hour=0, minute=0, second=0, microsecond=0)
            month = day.replace(day=1)
            read_at = time.time()
            async with self._db.read() as session:
                project = await projects.get(session, project_id)
                if project is None or (
                    project.daily_budget_micro is None and project.monthly_budget_micro is None
                ):
                    name = project.name if project is not None else project_id
                    return Budgets(name, None, None, 0, 0, "", "", read_at)
                spent_day = await projects.spent_since(session, project_id, day)
                spent_month = await projects.spent_since(session, project_id, month)
            return Budgets(
                project.name,
                project.daily_budget_micro,
                project.monthly_budget_micro,
                spent_day,
                spent_month,
                day.strftime("%Y-%m-%d"),
                month.strftime("%Y-%m"),
                read_at,
            )

        return await self._cache.get(project_id, load)

    async def check(self, project_id: str) -> bool:
        """Refuse the project if one of its budgets is spent (nothing is held);
        True when it has a budget (its requests are then held and counted)."""
        budgets = await self._budgets(project_id)
        if budgets.unlimited:
            return False
        local = self._local.get(project_id) or _Local()
        now = datetime.now(UTC)
        pending = local.held + local.recent(budgets.read_at - COMMIT_LAG_S)
        # A snapshot of another day or month than now's says nothing of today.
        same_day = now.strftime("%Y-%m-%d") == budgets.day
        same_month = now.strftime("%Y-%m") == budgets.month
        if budgets.daily_micro is not None:
            spent = (budgets.spent_day if same_day else 0) + pending
            if spent >= budgets.daily_micro:
                raise _spent(budgets.name, "daily", budgets.daily_micro, spent, "00:00 UTC")
        if budgets.monthly_micro is not None:
            spent = (budgets.spent_month if same_month else 0) + pending
            if spent >= budgets.monthly_micro:
                raise _spent(
                    budgets.name, "monthly", budgets.monthly_micro, spent, "the 1st, 00:00 UTC"
                )
        return True

    async def status(self, project_id: str) -> Budgets:
        """The project's budgets and committed spend, as admission last read them."""
        return await self._budgets(project_id)

    def hold(self, project_id: str, micro: int) -> None:
        """A request let in may still cost ``micro``."""
        if micro:
            self._local.setdefault(project_id, _Local()).held += micro

    def rehold(self, project_id: str, before: int, after: int) -> None:
        """A request's hold changed (its prompt counted exactly)."""
        local = self._local.get(project_id)
        if local is not None:  # only projects with budgets are counted
            local.held = max(0, local.held + after - before)

    def settle(self, project_id: str, held: int, cost: int | None) -> None:
        """A request ended: its hold goes, and what it cost counts until committed."""
        local = self._local.get(project_id)
        if local is None:
            return
        local.held = max(0, local.held - held)
        if cost:
            local.add_settled(cost)

    def forget(self, project_id: str) -> None:
        """A budget changed here: read it again at the next request."""
        self._cache.discard(project_id)


def _spent(name: str, period: str, budget: int, spent: int, resets: str) -> QuotaExceededError:
    return QuotaExceededError(
        f"Project {name} has reached its {period} budget of ¥{to_yuan(budget)} "
        f"(¥{to_yuan(spent)} spent or held); it resets at {resets}",
        code="project_budget_exceeded",
    )
