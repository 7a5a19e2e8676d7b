"""API keys: ``sk-`` and 48 random characters, stored only as a SHA-256.

A plain hash is the right tool here (not a password KDF): the keys carry
~285 bits of randomness, so there is nothing to brute-force, and a lookup by
hash stays one indexed query per request.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from moonbase.auth.caller import KeyOwner
from moonbase.store.tables import Account, ApiKey, utcnow

KEY_PREFIX = "sk-"
KEY_RANDOM_CHARS = 48
_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class IssuedKey:
    """A key as created: the secret is only ever available here."""

    id: str
    secret: str
    display: str


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def display_form(secret: str) -> str:
    return f"{secret[:7]}...{secret[-4:]}"


async def create(session: AsyncSession, account_id: str, name: str = "") -> IssuedKey:
    secret = KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(KEY_RANDOM_CHARS))
    key = ApiKey(
        id="key-" + secrets.token_hex(12),
        account_id=account_id,
        name=name,
        key_hash=hash_key(secret),
        display=display_form(secret),
    )
    session.add(key)
    await session.flush()
    return IssuedKey(id=key.id, secret=secret, display=key.display)


async def authenticate(session: AsyncSession, secret: str) -> KeyOwner | None:
    """Who calls with ``secret``: an active key's id and account, or None."""
    row = (
        await session.execute(
            select(ApiKey.id, ApiKey.account_id).where(
                ApiKey.key_hash == hash_key(secret), ApiKey.revoked_at.is_(None)
            )
        )
    ).first()
    return KeyOwner(key_id=row.id, account_id=row.account_id) if row else None


async def list_all(session: AsyncSession) -> list[tuple[ApiKey, str]]:
    """Every key with its account's name, oldest first."""
    rows = await session.execute(
        select(ApiKey, Account.name)
        .join(Account, Account.id == ApiKey.account_id)
        .order_by(ApiKey.created_at, ApiKey.id)
    )
    return [(key, account_name) for key, account_name in rows]


async def revoke(session: AsyncSession, key_id: str, when: datetime | None = None) -> bool:
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=when or utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
