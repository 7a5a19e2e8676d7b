"""moonbase over a fast scripted engine, as its own process, for crash tests.

    python -m tests.batches.fake_server --data-dir D --database-url U --port P [--worker-only]

A test double for the engine only: the gateway, worker, billing and store
are moonbase's own, so killing this process is killing moonbase.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

import uvicorn

from moonbase.app import create_app
from moonbase.services import running_services
from moonbase.settings import EMBEDDED_ENGINE, BatchSettings, Settings
from tests.fakes import ScriptedEngine


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--worker-only", action="store_true")
    parser.add_argument("--no-worker", action="store_true")
    args = parser.parse_args()
    settings = Settings(
        data_dir=args.data_dir,
        database_url=args.database_url,
        batches=BatchSettings(
            run_worker=not args.no_worker, concurrency=4, poll_interval_s=0.05, claim_seconds=2
        ),
    )
    engines = {EMBEDDED_ENGINE: ScriptedEngine(reply="ok", delay=0.004)}
    if args.worker_only:  # as `moonbase worker` runs: the services, no HTTP app

        async def work() -> None:
            async with running_services(settings, engines=engines) as services:
                assert services.worker is not None
                (args.data_dir / f"worker-{os.getpid()}.name").write_text(services.worker.name)
                await asyncio.Event().wait()

        asyncio.run(work())
    else:
        app = create_app(settings, engines=engines)
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
