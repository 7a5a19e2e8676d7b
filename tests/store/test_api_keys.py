import asyncio

from sqlalchemy import select

from moonbase import admin
from moonbase.settings import BillingSettings
from moonbase.store.database import Database
from moonbase.store.repositories import accounts, api_keys
from moonbase.store.tables import ApiKey


async def test_keys_are_moonshot_shaped_and_stored_only_as_hashes(database: Database):
    issued = await admin.create_key(database, "team-a", name="ci")
    assert issued.secret.startswith("sk-") and len(issued.secret) == 3 + 48
    assert issued.secret[3:].isalnum()
    async with database.transaction() as session:
        rows = list(await session.scalars(select(ApiKey)))
    assert len(rows) == 1
    stored = rows[0]
    assert issued.secret not in (stored.key_hash, stored.display, stored.name)
    assert stored.key_hash == api_keys.hash_key(issued.secret)
    assert stored.display == f"{issued.secret[:7]}...{issued.secret[-4:]}"


async def test_authenticate_and_revoke(database: Database):
    issued = await admin.create_key(database, "team-a")
    async with database.transaction() as session:
        owner = await api_keys.authenticate(session, issued.secret)
        account = await accounts.get_by_name(session, "team-a")
    assert owner is not None and account is not None
    assert (owner.key_id, owner.account_id) == (issued.id, account.id)

    assert await admin.revoke_key(database, issued.id)
    assert not await admin.revoke_key(database, issued.id)  # already revoked
    async with database.transaction() as session:
        assert await api_keys.authenticate(session, issued.secret) is None
        assert await api_keys.authenticate(session, issued.secret + "x") is None
    listing = await admin.list_keys(database)
    assert [(k.id, k.account, k.revoked_at is not None) for k in listing] == [
        (issued.id, "team-a", True)
    ]


async def test_bootstrap_creates_one_first_key_even_when_raced(database: Database):
    results = await asyncio.gather(
        *(admin.bootstrap(database, BillingSettings()) for _ in range(4))
    )
    issued = [r for r in results if r is not None]
    assert len(issued) == 1
    assert await admin.bootstrap(database, BillingSettings()) is None
    async with database.transaction() as session:
        assert await accounts.count(session) == 1
        assert await api_keys.authenticate(session, issued[0].secret) is not None


async def test_migrations_are_idempotent(database: Database):
    await database.migrate()
    await database.migrate()
    assert await admin.create_key(database, "x")
