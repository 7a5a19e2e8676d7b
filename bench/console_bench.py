"""Every console page's server time with 1,000,000 usage records, on SQLite
and PostgreSQL (issue 19: under 150 ms p95 each).

For each database this loads the records and their daily rollups the way
bench/usage_query_bench.py does (spread over 60 days, five organisations,
four projects and three keys each; the first organisation holds 40 % of
them), writes one ledger charge per record (as the charge path does) and a
few top-ups and vouchers, and adds two people to the biggest organisation:
its owner (also the platform operator, so the operators' pages are measured
too) and a member of one of its projects. Each signs in through the console's
own form; then every page in the navigation (``pages.NAV``: whatever pages
exist when it runs), a project's page, and the usage page's heavier variants
(90 days, by key, the CSV) are requested in turn, round robin, in-process
through the ASGI app (httpx.ASGITransport: the app's whole work for a
request, no network), after a warm-up.

    .venv/bin/python bench/console_bench.py --records 1000000 --runs 40

PostgreSQL: a fresh database on ``--pg-dsn``'s server, dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.usage_query_bench import account_id, load_postgresql, load_sqlite, percentile, project_id
from moonbase.app import create_app
from moonbase.console.pages import NAV
from moonbase.organization import people
from moonbase.settings import EMBEDDED_ENGINE, Settings
from moonbase.store.database import Database
from moonbase.store.repositories import users
from tests.fakes import ScriptedEngine

TARGET_MS = 150.0
PASSWORD = "bench console password"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CHARGES = (
    "INSERT INTO ledger_entries (account_id, kind, cash_micro, voucher_micro, reason, "
    "reference, created_at) SELECT account_id, 'charge', -cost_micro, 0, "
    "'chat completion, ' || model, request_id, created_at FROM usage_records"
)


async def seed_people_and_money(db: Database, today: date) -> None:
    """One charge entry per record, top-ups and vouchers, an owner and a member."""
    async with db.transaction() as session:
        await session.execute(text(CHARGES))
        for n in range(40):  # a top-up or a voucher every few days
            at = datetime.combine(today - timedelta(days=n * 3), datetime.min.time(), UTC)
            await session.execute(
                text("INSERT INTO ledger_entries (account_id, kind, cash_micro, voucher_micro, "
                     "reason, reference, created_at) VALUES (:a, :k, :c, :v, :r, NULL, :t)"),
                {"a": account_id(0), "k": "voucher" if n % 4 == 0 else "topup",
                 "c": 0 if n % 4 == 0 else 500_000_000, "v": 50_000_000 if n % 4 == 0 else 0,
                 "r": f"bench credit {n}", "t": at + timedelta(hours=9)},
            )  # fmt: skip
    owner = await people.create_user(db, "owner@bench.example", PASSWORD, operator=True)
    member = await people.create_user(db, "member@bench.example", PASSWORD)
    async with db.transaction() as session:
        await users.add_member(session, account_id(0), owner.id, "owner")
        await users.add_member(session, account_id(0), member.id, "member")
        await users.add_project_member(session, project_id(0, 0), member.id, "member")
    if not db.is_sqlite:
        async with db.transaction() as session:
            await session.execute(text("ANALYZE"))


async def sign_in(client: httpx.AsyncClient, email: str) -> None:
    page = await client.get("/console/sign-in")
    token = CSRF.search(page.text)
    assert token is not None
    reply = await client.post(
        "/console/sign-in",
        data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)},
    )
    assert reply.status_code == 303, reply.text
    if email.startswith("owner"):  # the operator is in one organisation: it is chosen
        home = await client.get("/console")
        assert home.status_code == 200, home.text[:500]


def pages(today: date) -> list[tuple[str, str]]:
    """(who, path): every page of the navigation as the owner-operator, the
    members' pages as the member, and the heavier variants."""
    found = [("owner", item.path) for item in NAV]
    found += [("member", item.path) for item in NAV if not item.operator]
    before = (today - timedelta(days=20)).isoformat()
    found += [
        ("owner", f"/console/projects/{project_id(0, 0)}"),
        ("owner", "/console/usage?days=90"),
        ("owner", "/console/usage?days=90&group=key"),
        ("owner", f"/console/usage?days=30&project={project_id(0, 1)}&model=kimi-latest"),
        ("owner", "/console/usage.csv?days=30"),
        ("owner", "/console/usage.csv?days=90"),
        ("owner", f"/console/billing?before={before}"),
    ]
    return found


async def measure(db: Database, data_dir: Path, runs: int, today: date) -> dict[str, Any]:
    settings = Settings(data_dir=data_dir)
    app = create_app(settings, engines={EMBEDDED_ENGINE: ScriptedEngine()}, db=db)
    timings: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    statuses: dict[tuple[str, str], int] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        clients = {
            who: httpx.AsyncClient(transport=transport, base_url="http://moonbase")
            for who in ("owner", "member")
        }
        await sign_in(clients["owner"], "owner@bench.example")
        await sign_in(clients["member"], "member@bench.example")
        todo = pages(today)
        for n in range(runs + 3):  # round robin; the first three rounds warm up
            for who, path in todo:
                started, cpu_started = time.perf_counter(), time.process_time()
                reply = await clients[who].get(path)
                elapsed = (time.perf_counter() - started) * 1000
                used = (time.process_time() - cpu_started) * 1000
                statuses[(who, path)] = reply.status_code
                if n >= 3:
                    timings.setdefault((who, path), []).append(elapsed)
                    cpu.setdefault((who, path), []).append(used)
        for client in clients.values():
            await client.aclose()
    return {"timings": timings, "cpu": cpu, "statuses": statuses}


async def run_one(kind: str, args: argparse.Namespace, today: date) -> dict[str, Any]:
    folder = tempfile.TemporaryDirectory(prefix="console-bench-")
    pg_name = f"moonbase_console_bench_{secrets.token_hex(6)}"
    base = args.pg_dsn.rsplit("/", 1)[0]
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{Path(folder.name) / 'moonbase.db'}"
    else:
        admin = await asyncpg.connect(args.pg_dsn)
        await admin.execute(f'CREATE DATABASE "{pg_name}"')
        await admin.close()
        url = f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{pg_name}"
    db = Database(url)
    try:
        await db.migrate()
        started = time.perf_counter()
        if kind == "sqlite":
            path = Path(folder.name) / "moonbase.db"
            await asyncio.to_thread(load_sqlite, path, args.records, today)
        else:
            await load_postgresql(url, args.records, today)
        await seed_people_and_money(db, today)
        load_s = time.perf_counter() - started
        print(f"{kind}: loaded {args.records:,} records, their rollups and ledger charges in "
              f"{load_s:.1f} s", flush=True)  # fmt: skip
        return {"kind": kind, **await measure(db, Path(folder.name), args.runs, today)}
    finally:
        await db.dispose()
        if kind == "postgresql":
            admin = await asyncpg.connect(args.pg_dsn)
            await admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            await admin.close()
        folder.cleanup()


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> bool:
    print(f"\n{args.records:,} usage records (and ledger charges); {args.runs} timed requests "
          "per page after 3 warm-up rounds; server time in-process, wall and this "
          "process's CPU (ms)\n")  # fmt: skip
    print("| database | as | page | status | p50 ms | p95 ms | max ms | CPU p95 ms "
          "| p95 < 150 ms |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    ok = True
    for r in results:
        for (who, path), values in r["timings"].items():
            p95 = percentile(values, 0.95)
            status = r["statuses"][(who, path)]
            good = p95 < TARGET_MS and status in (200, 403)
            ok &= good
            cpu = percentile(r["cpu"][(who, path)], 0.95)
            print(f"| {r['kind']} | {who} | `{path}` | {status} | {statistics.median(values):.1f} "
                  f"| {p95:.1f} | {max(values):.1f} | {cpu:.1f} "
                  f"| {'yes' if good else 'NO'} |")  # fmt: skip
    return ok


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    today = datetime.now(UTC).date()
    results = [await run_one(kind, args, today) for kind in args.databases.split(",")]
    if not report(results, args):
        raise SystemExit(1)


if __name__ == "__main__":
    asyncio.run(main())
