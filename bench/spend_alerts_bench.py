"""What one spend-alert check costs (moonbase/alerts/detector.py).

Every process runs a check every ``alerts.check_interval_s`` (5 s). Its
cost grows with the projects that have alerts not yet fired this period: each
needs its day's and month's spend (``projects.spent_since``). Measured here
for ``--projects`` projects with a webhook and a day and a month alert, each
with ``--records`` usage records this month: a check while no alert has fired
(every sum read, none crossed), and a check once every alert has fired (no
sum read). Median of ``--repeat`` checks.

    .venv/bin/python bench/spend_alerts_bench.py --projects 1000 --records 100
    .venv/bin/python bench/spend_alerts_bench.py --database postgresql
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from moonbase.alerts.detector import SpendAlertDetector
from moonbase.settings import AlertSettings
from moonbase.store.database import Database
from moonbase.store.tables import (
    Account,
    Project,
    ProjectWebhook,
    SpendAlert,
    UsageRecord,
)
from tests.conftest import create_pg_database, drop_pg_database


async def fill(db: Database, projects: int, records: int, now: datetime) -> None:
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    async with db.transaction() as session:
        for p in range(projects):
            await session.execute(
                insert(Account).values(id=f"acct-{p}", name=f"org-{p}", created_at=now)
            )
            await session.execute(
                insert(Project).values(
                    id=f"proj-{p}", account_id=f"acct-{p}", name="default", created_at=now
                )
            )
            await session.execute(
                insert(ProjectWebhook).values(
                    project_id=f"proj-{p}", url="http://127.0.0.1:9/hook",
                    secret="whsec_x", created_at=now, updated_at=now,
                )
            )  # fmt: skip
            for period in ("day", "month"):
                await session.execute(
                    insert(SpendAlert).values(
                        id=f"alert-{p}-{period}", project_id=f"proj-{p}", period=period,
                        threshold_micro=10**12, created_at=now,
                    )
                )  # fmt: skip
            span = (now - month).total_seconds()
            await session.execute(
                insert(UsageRecord),
                [
                    dict(
                        request_id=f"req-{p}-{r}", account_id=f"acct-{p}",
                        project_id=f"proj-{p}", model="moonshot-v1-8k", prompt_tokens=10,
                        completion_tokens=10, cached_tokens=0, status="completed",
                        created_at=month + timedelta(seconds=span * r / records),
                        cost_micro=100, latency_ms=1,
                    )
                    for r in range(records)
                ],
            )  # fmt: skip


async def timed(detector: SpendAlertDetector, repeat: int) -> tuple[float, int]:
    times, recorded = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        recorded += await detector.check()
        times.append(time.perf_counter() - start)
    return statistics.median(times), recorded


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        if args.database == "sqlite":
            url = f"sqlite+aiosqlite:///{folder}/bench.db"
        else:
            url = await create_pg_database()
        db = Database(url)
        try:
            await db.migrate()
            now = datetime.now(UTC)
            await fill(db, args.projects, args.records, now)
            detector = SpendAlertDetector(db, AlertSettings())
            waiting, recorded = await timed(detector, args.repeat)
            assert recorded == 0
            async with db.transaction() as session:  # every alert crossed: one more check fires all
                await session.execute(
                    SpendAlert.__table__.update().values(threshold_micro=1)  # type: ignore[attr-defined]
                )
            first, recorded = await timed(detector, 1)
            assert recorded == 2 * args.projects
            fired, recorded = await timed(detector, args.repeat)
            assert recorded == 0
        finally:
            await db.dispose()
            if args.database == "postgresql":
                await drop_pg_database(url)
    print(
        f"{args.database}: {args.projects} projects x 2 alerts, {args.records} records each: "
        f"check with none fired {waiting * 1000:.1f} ms, the check that fires all "
        f"{first * 1000:.1f} ms, check once all fired {fired * 1000:.1f} ms (median of "
        f"{args.repeat})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--records", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    asyncio.run(main(parser.parse_args()))
