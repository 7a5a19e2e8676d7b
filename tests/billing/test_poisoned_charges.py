"""A charge the database refuses fails alone: the others commit, it is set aside.

On PostgreSQL a NUL or an over-long string in a usage record used to make the
group commit retry the whole group forever, so that one request stopped the
billing of every account, hung balance reads and shutdown, and was replayed
at every start. The edge now refuses such strings (tests/platform/
test_hostile_input.py); these tests put the poison straight into the queue, as
a bug elsewhere might, and check that the billing survives it anyway.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import replace
from pathlib import Path

from sqlalchemy.exc import OperationalError

from moonbase.auth.caller import KeyOwner
from moonbase.billing import dead_letters
from moonbase.billing.journal import Entry
from moonbase.billing.service import BillingService, Ticket
from moonbase.settings import BillingSettings
from moonbase.store.database import Database
from moonbase.store.repositories import api_keys
from tests.billing.accounts import books, funded_account
from tests.billing.test_charge_journal import usage

# A lone surrogate no store can encode; a NUL and 300 characters PostgreSQL's
# varchar(256) refuses (SQLite would keep those).
POISONS = {"surrogate": "a\ud800b", "nul-and-long": "a\x00b" + "x" * 300}


async def owner_of(database: Database, secret: str) -> KeyOwner:
    async with database.read() as session:
        owner = await api_keys.authenticate(session, secret)
    assert owner is not None
    return owner


async def test_a_poisoned_charge_is_set_aside_and_the_others_commit(
    database: Database, tmp_path: Path
):
    victim_id, victim_key = await funded_account(database, "victim", cash="10")
    attacker_id, attacker_key = await funded_account(database, "attacker", cash="10")
    victim, attacker = await owner_of(database, victim_key), await owner_of(database, attacker_key)
    folder = tmp_path / "journal"
    billing = BillingService(database, BillingSettings(), journal_dir=folder)
    poisoned = []
    for name, text in POISONS.items():
        record = replace(
            usage(f"poison-{name}", attacker_id, attacker.key_id), safety_identifier=text
        )
        await billing.settle(Ticket(f"poison-{name}", attacker, 0.0), record)
        poisoned.append(f"poison-{name}")
    # In the same group as the poison, and in later groups.
    for n in range(3):
        request_id = f"victim-{n}"
        await billing.settle(
            Ticket(request_id, victim, 0.0), usage(request_id, victim_id, victim.key_id)
        )
        if n == 1:
            await asyncio.sleep(0.2)
    assert await billing.flushed(at_most_s=60)
    account, entries, records, from_ledger = await books(database, victim_id)
    assert sorted(r.request_id for r in records) == ["victim-0", "victim-1", "victim-2"]
    assert [e.reference for e in entries if e.kind == "charge"] == [r.request_id for r in records]
    assert from_ledger.cash_micro == account.cash_micro < 10_000_000
    # SQLite keeps a NUL and ignores declared lengths: there only the surrogate fails.
    refused = ["poison-surrogate"] if database.is_sqlite else sorted(poisoned)
    assert billing.dead_letters.count == len(refused)
    aside = dead_letters.read(folder)
    assert sorted(letter["charge"]["record"]["request_id"] for letter in aside) == refused
    assert POISONS["surrogate"] in [a["charge"]["record"]["safety_identifier"] for a in aside]
    # The attacker was not charged for what could not be recorded; nothing hangs.
    _, attacker_entries, attacker_records, _ = await books(database, attacker_id)
    recorded = sorted(set(poisoned) - set(refused))
    assert [r.request_id for r in attacker_records] == recorded
    assert [e.reference for e in attacker_entries if e.kind == "charge"] == recorded
    assert (await billing.balances(victim_id)).cash_micro == account.cash_micro
    await asyncio.wait_for(billing.close(), 60)
    # Shut down cleanly: the journal is empty, so the next start replays nothing.
    restarted = BillingService(database, BillingSettings(), journal_dir=folder)
    assert await restarted.recover() == 0
    await restarted.close()


async def test_a_crashed_gateways_poisoned_charge_does_not_block_the_next_start(
    database: Database, tmp_path: Path
):
    account_id, secret = await funded_account(database, "crashy", cash="10")
    owner = await owner_of(database, secret)
    folder = tmp_path / "journal"
    dead = BillingService(database, BillingSettings(), journal_dir=folder)
    journal = dead._journal
    assert journal is not None
    poison = replace(usage("poison", account_id, owner.key_id), prompt_cache_key="\ud800")
    journal.append(Entry("poison", owner.key_id, poison, False))
    journal.append(Entry("good", owner.key_id, usage("good", account_id, owner.key_id), False))
    os.close(journal._fd)  # killed: the lock goes with the process

    live = BillingService(database, BillingSettings(), journal_dir=folder)
    assert await live.recover() == 1
    _, _, records, _ = await books(database, account_id)
    assert [r.request_id for r in records] == ["good"]
    assert [d["charge"]["record"]["request_id"] for d in dead_letters.read(folder)] == ["poison"]
    assert await live.recover() == 0  # taken over once, not at every start
    await live.close()


async def test_shutdown_finishes_while_the_database_refuses_and_loses_nothing(
    database: Database, tmp_path: Path, monkeypatch
):
    account_id, secret = await funded_account(database, "patient", cash="10")
    owner = await owner_of(database, secret)
    folder = tmp_path / "journal"
    settings = BillingSettings(shutdown_flush_s=0.5, read_wait_s=0.2)
    billing = BillingService(database, settings, journal_dir=folder)

    async def unreachable(settlements):
        raise OperationalError("COMMIT", {}, ConnectionRefusedError("the database is down"))

    monkeypatch.setattr(billing, "settle_many", unreachable)
    await billing.settle(Ticket("waiting", owner, 0.0), usage("waiting", account_id, owner.key_id))
    assert not await billing.flushed(at_most_s=0.3)
    assert billing.dead_letters.count == 0  # an outage is not the charge's fault
    await asyncio.wait_for(billing.balances(account_id), 30)  # answers, without the charge
    await asyncio.wait_for(billing.close(), 30)
    # The charge stayed in the journal; the next start commits it.
    monkeypatch.undo()
    restarted = BillingService(database, BillingSettings(), journal_dir=folder)
    assert await restarted.recover() == 1
    _, _, records, _ = await books(database, account_id)
    assert [r.request_id for r in records] == ["waiting"]
    await restarted.close()


async def test_the_cli_lists_the_dead_letters(tmp_path: Path):
    from typer.testing import CliRunner

    from moonbase.cli import app

    record = replace(usage("refused", "acct-x", "key-x"), safety_identifier="a\ud800")
    letters = dead_letters.DeadLetters(tmp_path / "journal")
    letters.add(Entry("refused", "key-x", record, False), ValueError("surrogates not allowed"))
    listed = CliRunner().invoke(app, ["dead-letters", "--data-dir", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    [line] = listed.output.splitlines()
    letter = json.loads(line)
    assert letter["charge"]["record"]["request_id"] == "refused"
    assert "surrogates" in letter["error"]
