"""Bearer credentials of people: sign-in sessions (``sess-...``), organisation
admin keys (``sk-admin-...``) and invitation tokens. Like API keys, each is
random enough that a SHA-256 of it is the right thing to keep (an indexed
lookup, nothing to brute-force); the secret is shown once."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from moonbase.store.tables import AdminKey, Invite, User, UserSession, utcnow

SESSION_PREFIX = "sess-"
ADMIN_KEY_PREFIX = "sk-admin-"
INVITE_PREFIX = "inv-"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(36)  # 288 bits


async def open_session(session: AsyncSession, user_id: str, lifetime: timedelta) -> str:
    secret = new_secret(SESSION_PREFIX)
    session.add(
        UserSession(
            id="sess-" + secrets.token_hex(12),
            user_id=user_id,
            token_hash=digest(secret),
            expires_at=utcnow() + lifetime,
        )
    )
    await session.flush()
    return secret


async def session_user(session: AsyncSession, secret: str) -> User | None:
    """The user a live session token belongs to (not expired, revoked or disabled)."""
    row = await session.execute(
        select(User)
        .join(UserSession, UserSession.user_id == User.id)
        .where(
            UserSession.token_hash == digest(secret),
            UserSession.revoked_at.is_(None),
            UserSession.expires_at > utcnow(),
            User.disabled_at.is_(None),
        )
    )
    return row.scalar_one_or_none()


async def close_session(session: AsyncSession, secret: str) -> None:
    await session.execute(
        update(UserSession)
        .where(UserSession.token_hash == digest(secret), UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def close_sessions_of(session: AsyncSession, user_id: str) -> None:
    """Every session of the user (a new password, a disabled user)."""
    await session.execute(
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def create_admin_key(
    session: AsyncSession, account_id: str, user_id: str, name: str
) -> tuple[AdminKey, str]:
    secret = new_secret(ADMIN_KEY_PREFIX)
    key = AdminKey(
        id="key-admin-" + secrets.token_hex(12),
        account_id=account_id,
        user_id=user_id,
        name=name,
        key_hash=digest(secret),
        display=f"{secret[:12]}...{secret[-4:]}",
    )
    session.add(key)
    await session.flush()
    return key, secret


async def admin_key(session: AsyncSession, secret: str) -> AdminKey | None:
    return await session.scalar(
        select(AdminKey).where(AdminKey.key_hash == digest(secret), AdminKey.revoked_at.is_(None))
    )


async def admin_keys_of(session: AsyncSession, account_id: str) -> list[AdminKey]:
    query = (
        select(AdminKey)
        .where(AdminKey.account_id == account_id, AdminKey.revoked_at.is_(None))
        .order_by(AdminKey.created_at, AdminKey.id)
    )
    return list(await session.scalars(query))


async def invite_by_token(session: AsyncSession, secret: str) -> Invite | None:
    return await session.scalar(select(Invite).where(Invite.token_hash == digest(secret)))


async def claim_invite(session: AsyncSession, invite_id: str, now: datetime) -> bool:
    """Mark a pending invitation accepted; False if it was used, revoked or has
    expired meanwhile (the UPDATE decides, so two acceptances never both win)."""
    result = await session.execute(
        update(Invite)
        .where(
            Invite.id == invite_id,
            Invite.accepted_at.is_(None),
            Invite.revoked_at.is_(None),
            Invite.expires_at > now,
        )
        .values(accepted_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def invites_of(session: AsyncSession, account_id: str) -> list[Invite]:
    query = (
        select(Invite)
        .where(Invite.account_id == account_id, Invite.revoked_at.is_(None))
        .order_by(Invite.created_at, Invite.id)
    )
    return list(await session.scalars(query))
