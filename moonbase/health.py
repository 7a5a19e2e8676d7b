"""Liveness, readiness and the metrics scrape: what the platform says of itself."""

from __future__ import annotations

from dataclasses import dataclass

from moonbase.auth.roles import Principal
from moonbase.engines.base import EngineHealth
from moonbase.metrics import Metrics
from moonbase.registry import ModelRegistry
from moonbase.store.database import Database
from moonbase.store.repositories import batches as batch_rows


@dataclass(frozen=True)
class Readiness:
    problems: list[str]

    @property
    def ready(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class EngineState:
    """One engine as the operator's console shows it."""

    name: str
    health: EngineHealth
    models: list[str]  # the model ids it serves
    replicas: list[dict[str, object]]  # upstream: url, healthy, in_flight, served, last_error

    @property
    def errors(self) -> list[str]:
        """The latest error of each replica that has one."""
        return [f"{r['url']}: {r['last_error']}" for r in self.replicas if r.get("last_error")]


class HealthService:
    def __init__(self, db: Database, registry: ModelRegistry, metrics: Metrics) -> None:
        self._db = db
        self._registry = registry
        self.metrics = metrics

    async def engines(self) -> dict[str, EngineHealth]:
        return {name: await engine.health() for name, engine in self._registry.engines().items()}

    async def engines_for(self, p: Principal) -> list[EngineState]:
        """Every engine with its models, replicas and latest errors: the operator's only."""
        p.require_operator("see the engines")
        served: dict[str, list[str]] = {}
        for model in self._registry.all():
            served.setdefault(model.engine_name, []).append(model.id)
        states = []
        for name, health in (await self.engines()).items():
            replicas = health.details.get("replicas")
            states.append(
                EngineState(
                    name,
                    health,
                    sorted(served.get(name, [])),
                    list(replicas) if isinstance(replicas, list) else [],
                )
            )
        return states

    async def readiness(self) -> Readiness:
        """The database answers and every engine can take a request now."""
        problems: list[str] = []
        try:
            await self._db.ping()
        except Exception as exc:  # any failure means: not ready
            problems.append(f"database: {type(exc).__name__}")
        for name, health in (await self.engines()).items():
            if not health.ready:
                problems.append(f"engine {name}: not ready")
        return Readiness(problems)

    async def metrics_text(self) -> bytes:
        async with self._db.read() as session:
            batches = await batch_rows.overview(session)
        return self.metrics.render(await self.engines(), batches)
