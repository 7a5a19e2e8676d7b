"""API keys: ``sk-`` and 48 random characters, stored only as a SHA-256.

A plain hash is the right tool here (not a password KDF): the keys carry
~285 bits of randomness, so there is nothing to brute-force, and a lookup by
hash stays one indexed query per request.

A rotated key keeps its id (its usage, name and policy) and gets a new
secret; the old secret's hash moves to ``previous_hash`` and keeps working
until ``previous_valid_until``.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Select, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from moonbase.auth.caller import KeyOwner
from moonbase.auth.key_policy import encode_list, policy_of
from moonbase.store.repositories import projects
from moonbase.store.repositories.projects import default_project_id
from moonbase.store.tables import Account, ApiKey, Project, utcnow

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


def _new_secret() -> str:
    return KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(KEY_RANDOM_CHARS))


async def create(
    session: AsyncSession,
    account_id: str,
    name: str = "",
    *,
    expires_at: datetime | None = None,
    allowed_ips: list[str] | None = None,
    allowed_models: list[str] | None = None,
    project_id: str | None = None,
    created_by: str | None = None,
) -> IssuedKey:
    """A new key of ``project_id`` (the account's default project when None)."""
    secret = _new_secret()
    key = ApiKey(
        id="key-" + secrets.token_hex(12),
        account_id=account_id,
        project_id=project_id or default_project_id(account_id),
        name=name,
        key_hash=hash_key(secret),
        display=display_form(secret),
        expires_at=expires_at,
        allowed_ips=encode_list(allowed_ips),
        allowed_models=encode_list(allowed_models),
        created_by=created_by,
    )
    session.add(key)
    await session.flush()
    return IssuedKey(id=key.id, secret=secret, display=key.display)


async def authenticate(session: AsyncSession, secret: str) -> KeyOwner | None:
    """Who calls with ``secret``: a key's id, account and policy, or None. A
    disabled or expired key is returned (its policy refuses it, saying why);
    a revoked key, or a rotated key's old secret past its grace, is not."""
    digest = hash_key(secret)
    # The key's project comes in the same query: its allowlist and rate limits
    # are cached with the key (auth/project_policy.py).
    found = (
        await session.execute(
            select(ApiKey, Project)
            .outerjoin(Project, Project.id == ApiKey.project_id)
            .where(
                or_(ApiKey.key_hash == digest, ApiKey.previous_hash == digest),
                ApiKey.revoked_at.is_(None),
            )
        )
    ).first()
    if found is None:
        return None
    key, project = found
    policy = policy_of(key.expires_at, key.disabled_at, key.allowed_ips, key.allowed_models)
    if key.key_hash != digest:  # the old secret of a rotated key: until its grace ends
        grace_end = policy_of(key.previous_valid_until, None, None, None).expires_at
        if policy.expires_at is None or (grace_end and grace_end < policy.expires_at):
            policy = replace(policy, expires_at=grace_end)
    return KeyOwner(key.id, key.account_id, policy, key.project_id, projects.policy(project))


async def get(session: AsyncSession, key_id: str) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def rotate(session: AsyncSession, key: ApiKey, grace_until: datetime) -> IssuedKey:
    """A new secret for ``key``; the current one keeps working until ``grace_until``."""
    secret = _new_secret()
    key.previous_hash = key.key_hash
    key.previous_valid_until = grace_until
    key.key_hash = hash_key(secret)
    key.display = display_form(secret)
    await session.flush()
    return IssuedKey(id=key.id, secret=secret, display=key.display)


async def mark_used(session: AsyncSession, used: dict[str, datetime]) -> None:
    """Record when each key was last used (a batch of them, written together)."""
    for key_id, when in used.items():
        await session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key_id, or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < when)
            )
            .values(last_used_at=when)
        )


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


async def of_project(session: AsyncSession, project_id: str) -> list[ApiKey]:
    """The project's keys that are not revoked, oldest first."""
    rows = await session.scalars(
        select(ApiKey)
        .where(ApiKey.project_id == project_id, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.created_at, ApiKey.id)
    )
    return list(rows)


async def live_page(
    session: AsyncSession,
    account_id: str,
    project_ids: Collection[str] | None,
    limit: int,
    after: str | None,
) -> tuple[list[ApiKey], bool] | None:
    """A page of the account's live project keys (of ``project_ids`` only,
    when given), oldest first, after the key ``after``: the keys and whether
    more follow, or None if ``after`` is not one of them. Read by the
    page, not the whole listing (a reseller's project may hold thousands)."""
    query = _live_project_keys(account_id)
    if project_ids is not None:
        query = query.where(ApiKey.project_id.in_(list(project_ids)))
    if after is not None:
        anchor = await session.scalar(query.where(ApiKey.id == after))
        if anchor is None:
            return None
        query = query.where(
            (ApiKey.created_at > anchor.created_at)
            | ((ApiKey.created_at == anchor.created_at) & (ApiKey.id > anchor.id))
        )
    rows = list(
        await session.scalars(query.order_by(ApiKey.created_at, ApiKey.id).limit(limit + 1))
    )
    return rows[:limit], len(rows) > limit


async def of_account_projects(session: AsyncSession, account_id: str) -> list[ApiKey]:
    """Every live key of the account's projects, oldest first: one read for a
    listing of many projects (``of_project`` is one project's)."""
    rows = await session.scalars(
        _live_project_keys(account_id).order_by(ApiKey.created_at, ApiKey.id)
    )
    return list(rows)


def _live_project_keys(account_id: str) -> Select[ApiKey]:
    """The account's keys that belong to a project and are not revoked."""
    return select(ApiKey).where(
        ApiKey.account_id == account_id,
        ApiKey.project_id.is_not(None),
        ApiKey.revoked_at.is_(None),
    )


async def disable_made_by(session: AsyncSession, created_by: str) -> list[str]:
    """Disable every live key ``created_by`` made (a disabled user's); their ids."""
    ids = list(
        await session.scalars(
            select(ApiKey.id).where(
                ApiKey.created_by == created_by,
                ApiKey.revoked_at.is_(None),
                ApiKey.disabled_at.is_(None),
            )
        )
    )
    if ids:
        await session.execute(update(ApiKey).where(ApiKey.id.in_(ids)).values(disabled_at=utcnow()))
    return ids
