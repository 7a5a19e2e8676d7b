"""Users and their memberships: of organisations (accounts) and of projects."""

from __future__ import annotations

import secrets
from collections.abc import Collection

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from moonbase.store.tables import (
    AdminKey,
    ApiKey,
    Invite,
    OrgMember,
    Project,
    ProjectMember,
    User,
    utcnow,
)


def new_id() -> str:
    return "user-" + secrets.token_hex(12)


async def create(
    session: AsyncSession, email: str, name: str, password_hash: str, is_operator: bool = False
) -> User:
    user = User(
        id=new_id(), email=email, name=name, password_hash=password_hash, is_operator=is_operator
    )
    session.add(user)
    await session.flush()
    return user


async def get(session: AsyncSession, user_id: str) -> User | None:
    return await session.get(User, user_id)


async def get_many(session: AsyncSession, user_ids: Collection[str]) -> list[User]:
    """The users among ``user_ids`` that exist, in one read."""
    if not user_ids:
        return []
    return list(await session.scalars(select(User).where(User.id.in_(list(user_ids)))))


async def by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email))


async def all_users(session: AsyncSession) -> list[User]:
    return list(await session.scalars(select(User).order_by(User.created_at, User.id)))


async def membership(session: AsyncSession, account_id: str, user_id: str) -> OrgMember | None:
    return await session.get(OrgMember, (account_id, user_id))


async def members(session: AsyncSession, account_id: str) -> list[tuple[OrgMember, User]]:
    rows = await session.execute(
        select(OrgMember, User)
        .join(User, User.id == OrgMember.user_id)
        .where(OrgMember.account_id == account_id)
        .order_by(OrgMember.created_at, User.id)
    )
    return [(member, user) for member, user in rows]


async def organisations_of(session: AsyncSession, user_id: str) -> list[OrgMember]:
    query = select(OrgMember).where(OrgMember.user_id == user_id).order_by(OrgMember.created_at)
    return list(await session.scalars(query))


async def add_member(session: AsyncSession, account_id: str, user_id: str, role: str) -> OrgMember:
    member = OrgMember(account_id=account_id, user_id=user_id, role=role)
    session.add(member)
    await session.flush()
    return member


async def owners(session: AsyncSession, account_id: str) -> int:
    query = select(func.count()).where(
        OrgMember.account_id == account_id, OrgMember.role == "owner"
    )
    return int(await session.scalar(query) or 0)


async def revoke_invites_by(session: AsyncSession, account_id: str | None, user: User) -> None:
    """Withdraw the pending invitations ``user`` made (of one organisation, or
    all): an invitation must not outlive its maker's right to make it."""
    query = update(Invite).where(
        Invite.created_by == f"user:{user.email}"[:200],
        Invite.accepted_at.is_(None),
        Invite.revoked_at.is_(None),
    )
    if account_id is not None:
        query = query.where(Invite.account_id == account_id)
    await session.execute(query.values(revoked_at=utcnow()))


async def revoke_keys_by(
    session: AsyncSession,
    user_id: str,
    *,
    account_id: str | None = None,
    project_id: str | None = None,
) -> list[str]:
    """Revoke the API keys ``user_id`` made (in one organisation or project);
    returns their ids, for the key cache to forget."""
    query = select(ApiKey.id).where(
        ApiKey.created_by == f"user:{user_id}", ApiKey.revoked_at.is_(None)
    )
    if account_id is not None:
        query = query.where(ApiKey.account_id == account_id)
    if project_id is not None:
        query = query.where(ApiKey.project_id == project_id)
    ids = list(await session.scalars(query))
    if ids:
        await session.execute(update(ApiKey).where(ApiKey.id.in_(ids)).values(revoked_at=utcnow()))
    return ids


async def remove_member(session: AsyncSession, account_id: str, user: User) -> list[str]:
    """Out of the organisation, and so out of each of its projects. What they
    made there that acts for them goes with them: their admin keys, the API
    keys they made and their pending invitations. Returns the API key ids."""
    user_id = user.id
    await session.execute(
        update(AdminKey)
        .where(
            AdminKey.account_id == account_id,
            AdminKey.user_id == user_id,
            AdminKey.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )
    await revoke_invites_by(session, account_id, user)
    revoked = await revoke_keys_by(session, user_id, account_id=account_id)
    in_org = select(Project.id).where(Project.account_id == account_id)
    await session.execute(
        delete(ProjectMember).where(
            ProjectMember.user_id == user_id, ProjectMember.project_id.in_(in_org)
        )
    )
    await session.execute(
        delete(OrgMember).where(OrgMember.account_id == account_id, OrgMember.user_id == user_id)
    )
    return revoked


async def project_roles(session: AsyncSession, account_id: str, user_id: str) -> dict[str, str]:
    """The user's role in each project of the organisation they belong to."""
    rows = await session.execute(
        select(ProjectMember.project_id, ProjectMember.role)
        .join(Project, Project.id == ProjectMember.project_id)
        .where(ProjectMember.user_id == user_id, Project.account_id == account_id)
    )
    return {project_id: role for project_id, role in rows}


async def project_member(
    session: AsyncSession, project_id: str, user_id: str
) -> ProjectMember | None:
    return await session.get(ProjectMember, (project_id, user_id))


async def project_members(
    session: AsyncSession, project_id: str
) -> list[tuple[ProjectMember, User]]:
    rows = await session.execute(
        select(ProjectMember, User)
        .join(User, User.id == ProjectMember.user_id)
        .where(ProjectMember.project_id == project_id)
        .order_by(ProjectMember.created_at, User.id)
    )
    return [(member, user) for member, user in rows]


async def add_project_member(
    session: AsyncSession, project_id: str, user_id: str, role: str
) -> ProjectMember:
    member = ProjectMember(project_id=project_id, user_id=user_id, role=role)
    session.add(member)
    await session.flush()
    return member


async def remove_project_member(session: AsyncSession, project_id: str, user_id: str) -> None:
    await session.execute(
        delete(ProjectMember).where(
            ProjectMember.project_id == project_id, ProjectMember.user_id == user_id
        )
    )
