"""Users as the operator makes them (the CLI, the first start) and as an
invitation makes them: the functions both the CLI and the management service
call."""

from __future__ import annotations

import json
import re
import secrets
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from moonbase import bounds
from moonbase.auth import passwords
from moonbase.auth.actor import SYSTEM, Actor
from moonbase.auth.roles import OrgRole
from moonbase.errors import BadRequestError, NotFoundError
from moonbase.settings import UsersSettings
from moonbase.store.database import Database
from moonbase.store.repositories import accounts, audit, credentials, users
from moonbase.store.tables import Account, Invite, OrgMember, User, utcnow

# Deliberately loose (RFC 5322 is not a regular language): one @, something on
# each side, no spaces or controls. Delivery is the invitation's own test.
_EMAIL = re.compile(r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+$")


def normal_email(email: str, param: str = "email") -> str:
    problem = bounds.EMAIL.check(email, param)
    if problem is not None:
        raise BadRequestError(problem, param=param)
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise BadRequestError(f"{param} is not an email address: {email[:100]!r}", param=param)
    return email


async def create_user(
    db: Database,
    email: str,
    password: str,
    name: str = "",
    operator: bool = False,
    actor: Actor = SYSTEM,
) -> User:
    email = normal_email(email)
    problem = bounds.USER_NAME.check(name, "name") or bounds.PASSWORD.check(password, "password")
    if problem is not None:
        raise BadRequestError(problem)
    password_hash = await passwords.hash_password(password)
    try:
        async with db.transaction() as session:
            user = await users.create(session, email, name, password_hash, operator)
            audit.record(session, actor, "user.create", user.id, None,
                         {"email": email, "operator": operator})  # fmt: skip
            return user
    except IntegrityError:
        raise BadRequestError(f"a user with email {email} exists", param="email") from None


async def bootstrap_operator(db: Database, settings: UsersSettings) -> str | None:
    """On a store without users, create the platform operator; returns the
    password when it was generated here (to be shown once), else None."""
    async with db.read() as session:
        if await users.all_users(session):
            return None
    configured = settings.operator_password
    password = configured.get_secret_value() if configured else secrets.token_urlsafe(18)
    try:
        await create_user(db, settings.operator_email, password, "operator", operator=True)
    except BadRequestError as exc:
        if exc.param == "email":  # another replica made it at the same moment
            return None
        raise
    return None if configured else password


async def find_user(db: Database, email_or_id: str) -> User:
    async with db.read() as session:
        user = None
        if email_or_id.startswith("user-") and bounds.ID.check(email_or_id, "user") is None:
            user = await users.get(session, email_or_id)
        if user is None and bounds.EMAIL.check(email_or_id, "user") is None:
            user = await users.by_email(session, email_or_id.strip().lower())
    if user is None:
        raise NotFoundError(f"no user {email_or_id[:100]!r}", param="user")
    return user


async def add_to_organisation(
    db: Database, account: Account, user: User, role: OrgRole, actor: Actor
) -> None:
    try:
        async with db.transaction() as session:
            await users.add_member(session, account.id, user.id, role)
            audit.record(session, actor, "member.add", user.id, account.id, {"role": role})
    except IntegrityError:
        raise BadRequestError(
            f"{user.email} is already a member of {account.name}", param="user"
        ) from None


async def find_organisation(db: Database, id_or_name: str) -> Account:
    problem = bounds.ACCOUNT_NAME.check(id_or_name, "organization")
    async with db.read() as session:
        account = None if problem else await accounts.get(session, id_or_name)
        if account is None and not problem:
            account = await accounts.get_by_name(session, id_or_name)
    if account is None:
        raise NotFoundError(f"no organization {id_or_name[:100]!r}", param="organization")
    return account


async def invite(
    db: Database,
    account_id: str,
    email: str,
    role: OrgRole,
    projects: list[tuple[str, str]],
    actor: Actor,
    lifetime: timedelta,
) -> tuple[Invite, str]:
    """A single-use invitation of ``email`` into the organisation (and
    ``projects``: [(id, role)]), valid for ``lifetime``; and its token."""
    email = normal_email(email)
    token = credentials.new_secret(credentials.INVITE_PREFIX)
    async with db.transaction() as session:
        existing = await users.by_email(session, email)
        if existing and await users.membership(session, account_id, existing.id):
            raise BadRequestError(f"{email} is already a member", param="email")
        row = Invite(
            id="invite-" + secrets.token_hex(12),
            account_id=account_id,
            email=email,
            role=role.value,
            projects=json.dumps(projects),
            token_hash=credentials.digest(token),
            created_by=actor.who,
            expires_at=utcnow() + lifetime,
        )
        session.add(row)
        await session.flush()
        audit.record(session, actor, "invite.create", row.id, account_id,
                     {"email": email, "role": role.value, "projects": projects})  # fmt: skip
    return row, token


async def set_password(db: Database, user_id: str, password: str, actor: Actor) -> None:
    """A new password; every session of the user ends."""
    problem = bounds.PASSWORD.check(password, "password")
    if problem is not None:
        raise BadRequestError(problem, param="password")
    password_hash = await passwords.hash_password(password)
    async with db.transaction() as session:
        user = await users.get(session, user_id)
        if user is None:
            raise NotFoundError(f"no user {user_id!r}", param="user")
        user.password_hash = password_hash
        await credentials.close_sessions_of(session, user.id)
        audit.record(session, actor, "user.password", user.id, None, {})


async def organisations(session: AsyncSession) -> list[tuple[Account, int]]:
    """Every organisation with its number of members."""
    count = select(func.count()).where(OrgMember.account_id == Account.id).scalar_subquery()
    rows = await session.execute(select(Account, count).order_by(Account.created_at))
    return [(account, int(n)) for account, n in rows]
