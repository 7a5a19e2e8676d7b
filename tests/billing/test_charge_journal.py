"""Charges a gateway journaled but never committed are committed once, by the next."""

from __future__ import annotations

import os
from pathlib import Path

from moonbase.billing.journal import ChargeJournal, Entry
from moonbase.billing.service import BillingService, Ticket
from moonbase.settings import BillingSettings
from moonbase.store.database import Database
from moonbase.store.repositories import api_keys
from moonbase.store.repositories import usage as usage_repo
from tests.billing.accounts import books, funded_account


def usage(request_id: str, account_id: str, key_id: str) -> usage_repo.GenerationUsage:
    return usage_repo.GenerationUsage(
        request_id=request_id,
        account_id=account_id,
        api_key_id=key_id,
        model="moonshot-v1-8k",
        prompt_tokens=1000,
        completion_tokens=500,
        cached_tokens=0,
        status="completed",
        latency_ms=12,
    )


async def test_a_crashed_gateways_charges_are_committed_once(database: Database, tmp_path: Path):
    account_id, secret = await funded_account(database, "crashy", cash="10")
    async with database.read() as session:
        owner = await api_keys.authenticate(session, secret)
    assert owner is not None
    key_id = owner.key_id
    folder = tmp_path / "journal"
    # A gateway charged "done" (committed) and "lost" (journaled only), then died.
    dead = BillingService(database, BillingSettings(), journal_dir=folder)
    await dead.settle(Ticket("done", owner, 0.0), usage("done", account_id, key_id))
    await dead.flushed()
    dead_journal = dead._journal
    assert dead_journal is not None
    dead_journal.append(Entry("done", key_id, usage("done", account_id, key_id), False))
    dead_journal.append(Entry("lost", key_id, usage("lost", account_id, key_id), False))
    os.close(dead_journal._fd)  # the process is gone: its lock with it

    live = BillingService(database, BillingSettings(), journal_dir=folder)
    assert await live.recover() == 1
    assert await live.recover() == 0  # the file is gone: nothing twice
    account, entries, records, from_ledger = await books(database, account_id)
    assert sorted(r.request_id for r in records) == ["done", "lost"]
    lost = next(r for r in records if r.request_id == "lost")
    assert lost.latency_ms == 12 and lost.cost_micro > 0
    assert [e.reference for e in entries if e.kind == "charge"].count("lost") == 1
    assert from_ledger.cash_micro == account.cash_micro
    assert [p.name for p in folder.iterdir()] == [live._journal.path.name]  # type: ignore[union-attr]
    await live.close()


async def test_a_living_gateways_journal_is_left_alone(database: Database, tmp_path: Path):
    account_id, _ = await funded_account(database, "alive", cash="10")
    folder = tmp_path / "journal"
    alive = ChargeJournal(folder)
    alive.append(Entry("busy", None, usage("busy", account_id, "k"), False))
    other = BillingService(database, BillingSettings(), journal_dir=folder)
    assert await other.recover() == 0
    assert alive.path.read_bytes().count(b"\n") == 1
    alive.close()
    await other.close()
