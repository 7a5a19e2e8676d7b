"""The management API's operations (``/v1/organization/...``), each asking
the caller's ``Principal`` (auth/roles.py) before it reads or changes
anything, and each change written to the audit log in its own transaction.

Everything outside the caller's organisation, and every project a ``member``
does not belong to, answers 404 as if it did not exist; what the caller can
see but not change answers 403.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from moonbase import admin, bounds
from moonbase.auth import passwords
from moonbase.auth.actor import Actor
from moonbase.auth.caller import KeyOwner
from moonbase.auth.key_cache import KeyCache
from moonbase.auth.key_policy import decode_list
from moonbase.auth.roles import OrgRole, Principal, ProjectRole, org_role, project_role
from moonbase.billing.service import BillingService
from moonbase.errors import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    RateLimitError,
)
from moonbase.organization import billing_view, people, usage
from moonbase.organization.usage import RollupRow, UsageQuery
from moonbase.schemas import organization as wire
from moonbase.settings import UsersSettings
from moonbase.store.database import Database
from moonbase.store.repositories import (
    accounts,
    api_keys,
    audit,
    credentials,
    failed_sign_ins,
    projects,
    users,
)
from moonbase.store.tables import Account, AdminKey, ApiKey, Invite, Project, User, utcnow
from moonbase.store.tables import OrgMember as OrgMemberRow

T = TypeVar("T")
MAX_PAGE = 100
FAILURE_WINDOW_S = 900.0
# An admin key's last use is written at most this often (a read-mostly API).
LAST_USED_EVERY = timedelta(minutes=1)


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequestError(f"limit must be between 1 and {MAX_PAGE}", param="limit")


def _not_in_list(after: str) -> BadRequestError:
    return BadRequestError(f"after: no item {after[:100]!r} in this list", param="after")


def page(items: Sequence[T], ident: Callable[[T], str], limit: int, after: str | None) -> wire.Page:
    """OpenAI's cursor pagination over a listing already in order."""
    _check_limit(limit)
    start = 0
    if after is not None:
        ids = [ident(item) for item in items]
        if after not in ids:
            raise _not_in_list(after)
        start = ids.index(after) + 1
    chunk = list(items[start : start + limit])
    return _page_of(chunk, ident, more=start + limit < len(items))


def _page_of(chunk: list[T], ident: Callable[[T], str], more: bool) -> wire.Page:
    return wire.Page(
        data=chunk,
        first_id=ident(chunk[0]) if chunk else None,
        last_id=ident(chunk[-1]) if chunk else None,
        has_more=more,
    )


def _org_user(member: OrgMemberRow, user: User) -> wire.OrgUser:
    return wire.OrgUser(
        id=user.id,
        name=user.name,
        email=user.email,
        role=member.role,
        added_at=wire.unix(member.created_at) or 0,
    )


def _project_out(project: Project) -> wire.ProjectOut:
    view = admin.project_view(project)
    return wire.ProjectOut(
        id=project.id,
        name=project.name,
        created_at=wire.unix(project.created_at) or 0,
        daily_budget=view.daily_budget,
        monthly_budget=view.monthly_budget,
    )


def _key_out(
    key: ApiKey, creators: dict[str, User], value: str | None = None
) -> wire.ProjectApiKey:
    creator = creators.get((key.created_by or "").removeprefix("user:"))
    if creator is not None:
        owner = wire.KeyOwner(
            type="user", user={"id": creator.id, "email": creator.email, "name": creator.name}
        )
    else:
        owner = wire.KeyOwner(type="operator", name=key.created_by)
    return wire.ProjectApiKey(
        id=key.id,
        name=key.name,
        redacted_value=key.display,
        created_at=wire.unix(key.created_at) or 0,
        last_used_at=wire.unix(key.last_used_at),
        owner=owner,
        expires_at=wire.unix(key.expires_at),
        disabled=key.disabled_at is not None,
        allowed_ips=decode_list(key.allowed_ips),
        allowed_models=decode_list(key.allowed_models),
        value=value,
    )


def _admin_key_out(key: AdminKey, user: User | None, value: str | None = None) -> wire.AdminApiKey:
    owner = {"type": "user", "id": key.user_id}
    if user is not None:
        owner |= {"email": user.email, "name": user.name}
    return wire.AdminApiKey(
        id=key.id,
        name=key.name,
        redacted_value=key.display,
        created_at=wire.unix(key.created_at) or 0,
        last_used_at=wire.unix(key.last_used_at),
        owner=owner,
        value=value,
    )


def _invite_out(invite: Invite, now: datetime) -> wire.InviteOut:
    expires = (
        invite.expires_at if invite.expires_at.tzinfo else invite.expires_at.replace(tzinfo=UTC)
    )
    status = "accepted" if invite.accepted_at else "expired" if expires <= now else "pending"
    return wire.InviteOut(
        id=invite.id,
        email=invite.email,
        role=invite.role,
        status=status,
        invited_at=wire.unix(invite.created_at) or 0,
        expires_at=wire.unix(invite.expires_at) or 0,
        accepted_at=wire.unix(invite.accepted_at),
        projects=[{"id": pid, "role": role} for pid, role in json.loads(invite.projects or "[]")],
    )


def _budgets(project: Project) -> dict[str, int | None]:
    return {"daily_budget_micro": project.daily_budget_micro,
            "monthly_budget_micro": project.monthly_budget_micro}  # fmt: skip


def _pending(invite: Invite, now: datetime) -> bool:
    expires = (
        invite.expires_at if invite.expires_at.tzinfo else invite.expires_at.replace(tzinfo=UTC)
    )
    return invite.accepted_at is None and invite.revoked_at is None and expires > now


def _unavailable() -> BadRequestError:
    return BadRequestError(
        "This invite was used, withdrawn or has expired", code="invite_unavailable"
    )


def _checked_id(value: str, what: str) -> str:
    """An id from a path: one that could not be stored is simply not found
    (PostgreSQL would refuse a NUL in the query itself)."""
    if bounds.ID.check(value, what) is not None:
        raise NotFoundError(f"no {what} {value[:100]!r}", param=what)
    return value


class OrganizationService:
    def __init__(
        self, db: Database, keys: KeyCache, billing: BillingService, settings: UsersSettings
    ) -> None:
        self._db = db
        self._keys = keys
        self._billing = billing
        self._settings = settings

    # Who is calling -------------------------------------------------------

    async def sign_in(self, email: str, password: str) -> wire.SessionOut:
        email = people.normal_email(email)
        # A place in the password pool's queue first (a flood is refused
        # before it writes), then the attempt is counted as failed before the
        # ~50 ms verification and forgiven after it succeeds: parallel guesses,
        # on any gateway, cannot all pass the check first.
        with passwords.place():
            await self._count_attempt(email)
            async with self._db.read() as session:
                user = await users.by_email(session, email)
            ok = await passwords.verify(user.password_hash if user else None, password)
        if not ok or user is None or user.disabled_at is not None:
            raise AuthenticationError("Wrong email or password", code="invalid_credentials")
        async with self._db.transaction() as session:
            await failed_sign_ins.forgive(session, email)
        return await self._open_session(user)

    async def _count_attempt(self, email: str) -> None:
        """Count an attempt as a failure, or refuse it (429, not counted) if
        the email has failed too often in the window."""
        now = utcnow()
        start = now - timedelta(seconds=FAILURE_WINDOW_S)
        most = self._settings.max_failed_sign_ins
        async with self._db.transaction() as session:
            oldest = await failed_sign_ins.attempt(session, email, now, start, most)
        if oldest is None:
            return
        if oldest.tzinfo is None:  # SQLite keeps UTC without its zone
            oldest = oldest.replace(tzinfo=UTC)
        retry = max(1, int((oldest - start).total_seconds()) + 1)
        raise RateLimitError(
            "Too many failed sign-ins for this email; try again later", retry_after=retry
        )

    async def _open_session(self, user: User) -> wire.SessionOut:
        lifetime = timedelta(hours=self._settings.session_hours)
        async with self._db.transaction() as session:
            token = await credentials.open_session(session, user.id, lifetime)
            memberships = await users.organisations_of(session, user.id)
        return wire.SessionOut(
            token=token,
            expires_at=wire.unix(utcnow() + lifetime) or 0,
            user={
                "id": user.id,
                "email": user.email,
                "name": user.name,
                "operator": user.is_operator,
            },
            organizations=[{"id": m.account_id, "role": m.role} for m in memberships],
        )

    async def sign_out(self, token: str) -> None:
        async with self._db.transaction() as session:
            await credentials.close_session(session, token)

    async def sign_out_everywhere(self, p: Principal) -> None:
        """End every session of the caller (this one too), on every device."""
        async with self._db.transaction() as session:
            await credentials.close_sessions_of(session, p.user_id)
            audit.record(session, p.actor, "user.sign_out_everywhere", p.user_id, p.account_id, {})

    async def organisations_of(self, token: str) -> list[tuple[str, str, str]]:
        """(id, name, role) of each organisation a session's user may act in:
        their memberships; for the operator, every organisation."""
        async with self._db.read() as session:
            user = await credentials.session_user(session, token)
            if user is None:
                raise AuthenticationError(
                    "Your session has ended: sign in again", code="invalid_session"
                )
            mine = {m.account_id: m.role for m in await users.organisations_of(session, user.id)}
            ids = await accounts.ids(session, limit=1000) if user.is_operator else list(mine)
            found = [await accounts.get(session, account_id) for account_id in ids]
        return sorted(
            (a.id, a.name, mine.get(a.id, OrgRole.OWNER.value)) for a in found if a is not None
        )

    async def principal(
        self, token: str, organization: str | None, address: str | None
    ) -> Principal:
        """Who ``token`` (an admin key or a session) is, acting in which
        organisation with which role. An admin key acts in its own
        organisation with its creator's current role; a session in the one
        named by ``OpenAI-Organization`` (or the user's only one)."""
        async with self._db.transaction() as session:
            if token.startswith(credentials.ADMIN_KEY_PREFIX):
                key = await credentials.admin_key(session, token)
                user = await users.get(session, key.user_id) if key else None
                if key is None or user is None or user.disabled_at is not None:
                    raise AuthenticationError("Invalid admin key", code="invalid_admin_key")
                now = utcnow()
                last = key.last_used_at
                if (
                    last is None
                    or (last if last.tzinfo else last.replace(tzinfo=UTC)) < now - LAST_USED_EVERY
                ):
                    key.last_used_at = now
                account_id = key.account_id
            elif token.startswith(credentials.SESSION_PREFIX):
                user = await credentials.session_user(session, token)
                if user is None:
                    raise AuthenticationError(
                        "Your session has ended: sign in again", code="invalid_session"
                    )
                account_id = await self._organisation_of(session, user, organization)
            else:
                raise AuthenticationError(
                    "The management API takes an admin key (sk-admin-...) or a session "
                    "token (sess-..., from POST /v1/auth/sessions); API keys (sk-...) "
                    "are for the model API",
                    code="invalid_admin_key",
                )
            member = await users.membership(session, account_id, user.id)
            if user.is_operator:
                role = OrgRole.OWNER
            elif member is None:  # removed since, or never in it
                raise NotFoundError(f"no organization {account_id!r}", param="organization")
            else:
                role = OrgRole(member.role)
            roles = await users.project_roles(session, account_id, user.id)
        return Principal(
            user.id,
            user.email,
            account_id,
            role,
            Actor(f"user:{user.email}"[:200], address),
            user.is_operator,
            {pid: ProjectRole(r) for pid, r in roles.items()},
        )

    async def _organisation_of(self, session: AsyncSession, user: User, named: str | None) -> str:
        if named is not None:
            named = _checked_id(named.strip(), "organization")
            if user.is_operator and await accounts.get(session, named) is not None:
                return named
            if await users.membership(session, named, user.id) is None:
                raise NotFoundError(f"no organization {named!r}", param="organization")
            return named
        memberships = await users.organisations_of(session, user.id)
        if len(memberships) == 1:
            return memberships[0].account_id
        if user.is_operator and not memberships:
            every = await accounts.ids(session, limit=2)
            if len(every) == 1:  # a platform of one organisation
                return every[0]
        raise BadRequestError(
            "Name the organization with the OpenAI-Organization header (its id)",
            param="organization",
        )

    # Users ----------------------------------------------------------------

    async def users(self, p: Principal) -> list[wire.OrgUser]:
        """Every member of the organisation (the console shows them all)."""
        async with self._db.read() as session:
            rows = await users.members(session, p.account_id)
        return [_org_user(m, u) for m, u in rows]

    async def list_users(self, p: Principal, limit: int, after: str | None) -> wire.Page:
        return page(await self.users(p), lambda u: u.id, limit, after)

    async def _member(
        self, session: AsyncSession, p: Principal, user_id: str
    ) -> tuple[OrgMemberRow, User]:
        _checked_id(user_id, "user")
        member = await users.membership(session, p.account_id, user_id)
        user = await users.get(session, user_id) if member else None
        if member is None or user is None:
            raise NotFoundError(f"no user {user_id!r} in this organization", param="user_id")
        return member, user

    async def get_user(self, p: Principal, user_id: str) -> wire.OrgUser:
        async with self._db.read() as session:
            return _org_user(*await self._member(session, p, user_id))

    async def _locked(self, session: AsyncSession, p: Principal) -> Principal:
        """Changes of membership hold the organisation's row (PostgreSQL: FOR
        UPDATE; SQLite's writers are serial anyway) and judge the caller by
        their role now, not as it was read a moment before: two owners
        demoting each other at once leave one owner, not none."""
        await session.execute(
            select(Account.id).where(Account.id == p.account_id).with_for_update()
        )
        if p.operator:
            return p
        member = await users.membership(session, p.account_id, p.user_id)
        if member is None:
            raise NotFoundError(f"no organization {p.account_id!r}", param="organization")
        return replace(p, role=OrgRole(member.role))

    async def set_role(self, p: Principal, user_id: str, role_text: str) -> wire.OrgUser:
        role = org_role(role_text)
        async with self._db.transaction() as session:
            p = await self._locked(session, p)
            member, user = await self._member(session, p, user_id)
            p.may_grant(OrgRole(member.role))  # an owner's role is an owner's to change
            p.may_grant(role)
            if member.role == OrgRole.OWNER and role != OrgRole.OWNER:
                await self._keep_an_owner(session, p.account_id)
            audit.record(session, p.actor, "member.role", user.id, p.account_id,
                         {"role": [member.role, role.value]})  # fmt: skip
            if role in (OrgRole.MEMBER, OrgRole.VIEWER):  # may no longer invite
                await users.revoke_invites_by(session, p.account_id, user)
            member.role = role.value
            return _org_user(member, user)

    async def _keep_an_owner(self, session: AsyncSession, account_id: str) -> None:
        if await users.owners(session, account_id) <= 1:
            raise BadRequestError(
                "An organization keeps at least one owner: make another owner first",
                param="role",
            )

    async def remove_user(self, p: Principal, user_id: str) -> wire.Deleted:
        async with self._db.transaction() as session:
            p = await self._locked(session, p)
            member, user = await self._member(session, p, user_id)
            p.may_grant(OrgRole(member.role))
            if member.role == OrgRole.OWNER:
                await self._keep_an_owner(session, p.account_id)
            revoked = await users.remove_member(session, p.account_id, user)
            audit.record(session, p.actor, "member.remove", user.id, p.account_id,
                         {"role": member.role, "email": user.email,
                          "keys_revoked": revoked})  # fmt: skip
        for key_id in revoked:
            self._keys.forget_key(key_id)
        return wire.Deleted(object="organization.user.deleted", id=user_id)

    # Invitations -----------------------------------------------------------

    async def list_invites(self, p: Principal, limit: int, after: str | None) -> wire.Page:
        p.require_org_admin("see invitations")
        async with self._db.read() as session:
            rows = await credentials.invites_of(session, p.account_id)
        now = utcnow()
        return page([_invite_out(i, now) for i in rows], lambda i: i.id, limit, after)

    async def create_invite(
        self, p: Principal, body: wire.InviteCreate, base_url: str
    ) -> wire.InviteOut:
        email = people.normal_email(body.email)
        role = org_role(body.role)
        p.may_grant(role)
        grants = [(g.id, project_role(g.role, "projects.role").value) for g in body.projects]
        async with self._db.read() as session:
            for project_id, _ in grants:
                await self._project(session, p, project_id)
        lifetime = timedelta(hours=self._settings.invite_hours)
        invite, token = await people.invite(
            self._db, p.account_id, email, role, grants, p.actor, lifetime
        )
        out = _invite_out(invite, utcnow())
        link = f"{base_url.rstrip('/')}/console/accept-invite#{token}"
        return out.model_copy(update={"token": token, "accept_url": link})

    async def _invite(self, session: AsyncSession, p: Principal, invite_id: str) -> Invite:
        _checked_id(invite_id, "invite")
        invite = await session.get(Invite, invite_id)
        if invite is None or invite.account_id != p.account_id or invite.revoked_at is not None:
            raise NotFoundError(f"no invite {invite_id!r}", param="invite_id")
        return invite

    async def get_invite(self, p: Principal, invite_id: str) -> wire.InviteOut:
        p.require_org_admin("see invitations")
        async with self._db.read() as session:
            return _invite_out(await self._invite(session, p, invite_id), utcnow())

    async def delete_invite(self, p: Principal, invite_id: str) -> wire.Deleted:
        p.require_org_admin("withdraw invitations")
        async with self._db.transaction() as session:
            invite = await self._invite(session, p, invite_id)
            if invite.accepted_at is not None:
                raise BadRequestError("This invite was accepted already", param="invite_id")
            invite.revoked_at = utcnow()
            audit.record(session, p.actor, "invite.delete", invite.id, p.account_id, {})
        return wire.Deleted(object="organization.invite.deleted", id=invite_id)

    async def accept_invite(
        self, body: wire.InviteAccept, session_token: str | None
    ) -> wire.SessionOut:
        """The invitee's answer. A new email's account is made with the
        password given; an existing account accepts with its own session
        (never a password here: the token's holder, the inviter included,
        must not get a place to guess at someone's password). Single use: of
        two acceptances at once, one wins."""
        now = utcnow()
        async with self._db.read() as session:
            invite = await credentials.invite_by_token(session, body.token)
            if invite is None:
                raise NotFoundError("This invite link is not valid", code="invalid_invite")
            if not _pending(invite, now):
                raise _unavailable()
            existing = await users.by_email(session, invite.email)
            signed_in = (
                await credentials.session_user(session, session_token) if session_token else None
            )
        if existing is not None and (signed_in is None or signed_in.id != existing.id):
            raise AuthenticationError(
                f"Sign in as {invite.email} and accept with that session "
                "(Authorization: Bearer sess-...)",
                code="sign_in_to_accept",
            )
        new_hash = None if existing else await passwords.hash_password(body.password or "")
        actor = Actor(f"user:{invite.email}"[:200])
        try:
            async with self._db.transaction() as session:
                if not await credentials.claim_invite(session, invite.id, now):
                    raise _unavailable()
                user = existing or await users.create(
                    session, invite.email, body.name, new_hash or ""
                )
                if await users.membership(session, invite.account_id, user.id) is None:
                    await users.add_member(session, invite.account_id, user.id, invite.role)
                for project_id, role in json.loads(invite.projects or "[]"):
                    project = await projects.get(session, project_id)
                    known = await users.project_member(session, project_id, user.id)
                    if project is not None and known is None:
                        await users.add_project_member(session, project_id, user.id, role)
                audit.record(session, actor, "invite.accept", invite.id, invite.account_id,
                             {"user": user.id, "role": invite.role})  # fmt: skip
        except IntegrityError:  # the same email's account made at this moment
            raise BadRequestError(
                f"{invite.email} has an account now: sign in and accept with its session",
                code="sign_in_to_accept",
            ) from None
        return await self._open_session(user)

    # Projects --------------------------------------------------------------

    async def _project(self, session: AsyncSession, p: Principal, project_id: str) -> Project:
        _checked_id(project_id, "project")
        project = await projects.get(session, project_id)
        if project is None or project.account_id != p.account_id or not p.sees_project(project.id):
            raise NotFoundError(f"no project {project_id!r}", param="project_id")
        return project

    async def projects(self, p: Principal) -> list[wire.ProjectOut]:
        """Every project the visitor sees."""
        async with self._db.read() as session:
            rows = await projects.of_account(session, p.account_id)
        return [_project_out(row) for row in rows if p.sees_project(row.id)]

    async def list_projects(self, p: Principal, limit: int, after: str | None) -> wire.Page:
        return page(await self.projects(p), lambda x: x.id, limit, after)

    async def get_project(self, p: Principal, project_id: str) -> wire.ProjectOut:
        async with self._db.read() as session:
            return _project_out(await self._project(session, p, project_id))

    async def create_project(self, p: Principal, body: wire.ProjectCreate) -> wire.ProjectOut:
        p.require_org_admin("create projects")
        view = await admin.create_project(
            self._db, p.account_id, body.name, body.daily_budget, body.monthly_budget, p.actor
        )
        return await self.get_project(p, view.id)

    async def update_project(
        self, p: Principal, project_id: str, body: wire.ProjectUpdate
    ) -> wire.ProjectOut:
        """Only what the body names changes (a budget left out stays as it is;
        null removes it), in one transaction holding the project's row, so
        two partial updates at once both land."""
        given = body.model_fields_set
        budgets = {
            name: admin.budget_micro(getattr(body, name), name)
            for name in ("daily_budget", "monthly_budget")
            if name in given
        }
        try:
            async with self._db.transaction() as session:
                project = await self._project(session, p, project_id)
                p.require_project_manager(project.id, "change this project")
                await session.refresh(project, with_for_update=True)
                before = {"name": project.name, **_budgets(project)}
                if body.name is not None:
                    project.name = body.name
                if "daily_budget" in budgets:
                    project.daily_budget_micro = budgets["daily_budget"]
                if "monthly_budget" in budgets:
                    project.monthly_budget_micro = budgets["monthly_budget"]
                changes = audit.diff(before, {"name": project.name, **_budgets(project)})
                if changes:
                    audit.record(session, p.actor, "project.update", project.id, p.account_id,
                                 changes)  # fmt: skip
                await session.flush()
                out = _project_out(project)
        except IntegrityError:
            raise BadRequestError(f"a project named {body.name!r} exists", param="name") from None
        if budgets:
            self._billing.budgets.forget(project_id)
        return out

    # Project members -------------------------------------------------------

    async def project_users(self, p: Principal, project_id: str) -> list[wire.ProjectUser]:
        """Every member of a project the visitor sees."""
        async with self._db.read() as session:
            project = await self._project(session, p, project_id)
            rows = await users.project_members(session, project.id)
        return [self._project_user(m.role, m.created_at, u) for m, u in rows]

    async def list_project_users(
        self, p: Principal, project_id: str, limit: int, after: str | None
    ) -> wire.Page:
        return page(await self.project_users(p, project_id), lambda x: x.id, limit, after)

    @staticmethod
    def _project_user(role: str, added: datetime, user: User) -> wire.ProjectUser:
        return wire.ProjectUser(
            id=user.id, name=user.name, email=user.email, role=role, added_at=wire.unix(added) or 0
        )

    async def get_project_user(
        self, p: Principal, project_id: str, user_id: str
    ) -> wire.ProjectUser:
        async with self._db.read() as session:
            project = await self._project(session, p, project_id)
            member = await users.project_member(session, project.id, _checked_id(user_id, "user"))
            user = await users.get(session, user_id) if member else None
        if member is None or user is None:
            raise NotFoundError(f"no user {user_id!r} in this project", param="user_id")
        return self._project_user(member.role, member.created_at, user)

    async def add_project_user(
        self, p: Principal, project_id: str, body: wire.ProjectUserAdd
    ) -> wire.ProjectUser:
        role = project_role(body.role)
        try:
            async with self._db.transaction() as session:
                project = await self._project(session, p, project_id)
                p.require_project_manager(project.id, "add people to this project")
                _, user = await self._member(session, p, body.user_id)
                member = await users.add_project_member(session, project.id, user.id, role.value)
                audit.record(session, p.actor, "project.member.add", user.id, p.account_id,
                             {"project": project.id, "role": role.value})  # fmt: skip
                return self._project_user(member.role, member.created_at or utcnow(), user)
        except IntegrityError:
            raise BadRequestError("That user is in this project already", param="user_id") from None

    async def set_project_role(
        self, p: Principal, project_id: str, user_id: str, role_text: str
    ) -> wire.ProjectUser:
        role = project_role(role_text)
        async with self._db.transaction() as session:
            project = await self._project(session, p, project_id)
            p.require_project_manager(project.id, "change roles in this project")
            member = await users.project_member(session, project.id, _checked_id(user_id, "user"))
            user = await users.get(session, user_id) if member else None
            if member is None or user is None:
                raise NotFoundError(f"no user {user_id!r} in this project", param="user_id")
            audit.record(session, p.actor, "project.member.role", user.id, p.account_id,
                         {"project": project.id, "role": [member.role, role.value]})  # fmt: skip
            member.role = role.value
            return self._project_user(member.role, member.created_at, user)

    async def remove_project_user(
        self, p: Principal, project_id: str, user_id: str
    ) -> wire.Deleted:
        async with self._db.transaction() as session:
            project = await self._project(session, p, project_id)
            p.require_project_manager(project.id, "remove people from this project")
            member = await users.project_member(session, project.id, _checked_id(user_id, "user"))
            if member is None:
                raise NotFoundError(f"no user {user_id!r} in this project", param="user_id")
            await users.remove_project_member(session, project.id, user_id)
            # The keys they made for the project leave with them.
            revoked = await users.revoke_keys_by(session, user_id, project_id=project.id)
            audit.record(session, p.actor, "project.member.remove", user_id, p.account_id,
                         {"project": project.id, "keys_revoked": revoked})  # fmt: skip
        for key_id in revoked:
            self._keys.forget_key(key_id)
        return wire.Deleted(object="organization.project.user.deleted", id=user_id)

    # Project API keys ------------------------------------------------------

    async def _creators(self, session: AsyncSession, keys: Sequence[ApiKey]) -> dict[str, User]:
        """The users who made ``keys`` (those made through the management API), in one read."""
        ids = {(key.created_by or "").removeprefix("user:") for key in keys}
        found = await users.get_many(session, [i for i in ids if i.startswith("user-")])
        return {user.id: user for user in found}

    async def _project_key(
        self, session: AsyncSession, p: Principal, project_id: str, key_id: str
    ) -> ApiKey:
        project = await self._project(session, p, project_id)
        key = await api_keys.get(session, _checked_id(key_id, "api_key"))
        if key is None or key.project_id != project.id or key.revoked_at is not None:
            raise NotFoundError(f"no API key {key_id!r} in this project", param="key_id")
        return key

    async def keys_by_project(
        self, p: Principal, project_id: str | None = None
    ) -> dict[str, list[wire.ProjectApiKey]]:
        """The live keys of every project the visitor sees (or of ``project_id``
        alone), by project: one read however many projects (the console's keys
        and usage pages)."""
        async with self._db.read() as session:
            if project_id is not None:
                project = await self._project(session, p, project_id)
                keys = await api_keys.of_project(session, project.id)
            else:
                keys = await api_keys.of_account_projects(session, p.account_id)
                keys = [k for k in keys if p.sees_project(k.project_id or "")]
            creators = await self._creators(session, keys)
        found: dict[str, list[wire.ProjectApiKey]] = {}
        for key in keys:
            found.setdefault(key.project_id or "", []).append(_key_out(key, creators))
        return found

    async def keys_page(
        self, p: Principal, project_id: str | None, limit: int, after: str | None
    ) -> tuple[list[tuple[str, wire.ProjectApiKey]], bool]:
        """A page of the live keys of the projects the visitor sees (or of
        ``project_id`` alone), oldest first, after the key ``after``, each
        with its project's id; and whether more follow. Read by the page
        from the database."""
        _check_limit(limit)
        if after is not None and bounds.ID.check(after, "after") is not None:
            raise _not_in_list(after)  # one that could not be stored is in no list
        async with self._db.read() as session:
            if project_id is not None:
                project_ids: list[str] | None = [(await self._project(session, p, project_id)).id]
            else:
                project_ids = None if p.sees_all_projects else list(p.projects)
            found = await api_keys.live_page(session, p.account_id, project_ids, limit, after)
            if found is None:
                raise _not_in_list(after or "")
            keys, more = found
            creators = await self._creators(session, keys)
        return [(k.project_id or "", _key_out(k, creators)) for k in keys], more

    async def list_project_keys(
        self, p: Principal, project_id: str, limit: int, after: str | None
    ) -> wire.Page:
        found, more = await self.keys_page(p, project_id, limit, after)
        return _page_of([key for _, key in found], lambda k: k.id, more)

    async def get_project_key(
        self, p: Principal, project_id: str, key_id: str
    ) -> wire.ProjectApiKey:
        async with self._db.read() as session:
            key = await self._project_key(session, p, project_id, key_id)
            return _key_out(key, await self._creators(session, [key]))

    async def create_project_key(
        self, p: Principal, project_id: str, body: wire.ProjectKeyCreate
    ) -> wire.ProjectApiKey:
        limits = admin.KeyRestrictions(
            body.expires_at, body.allowed_ips, body.allowed_models
        ).checked()
        async with self._db.transaction() as session:
            project = await self._project(session, p, project_id)
            p.require_project_user(project.id, "create keys in this project")
            issued = await api_keys.create(
                session,
                p.account_id,
                name=body.name,
                expires_at=limits.expires_at,
                allowed_ips=limits.allowed_ips,
                allowed_models=limits.allowed_models,
                project_id=project.id,
                created_by=f"user:{p.user_id}",
            )
            audit.record(session, p.actor, "key.create", issued.id, p.account_id,
                         {"name": body.name, "display": issued.display, "project": project.id,
                          **limits.as_dict()})  # fmt: skip
            key = await api_keys.get(session, issued.id)
            assert key is not None
            return _key_out(key, await self._creators(session, [key]), value=issued.secret)

    async def delete_project_key(self, p: Principal, project_id: str, key_id: str) -> wire.Deleted:
        async with self._db.read() as session:
            key = await self._project_key(session, p, project_id, key_id)
        if key.created_by != f"user:{p.user_id}":  # one's own key is one's own to revoke
            p.require_project_manager(key.project_id or "", "revoke others' keys")
        await admin.revoke_key(self._db, key.id, p.actor)
        self._keys.forget_key(key.id)
        return wire.Deleted(object="organization.project.api_key.deleted", id=key.id)

    async def _changeable_key(
        self, p: Principal, project_id: str, key_id: str, what: str
    ) -> ApiKey:
        """A live key of the project that ``p`` may change: their own (where
        they may still use the project), or any as its manager."""
        async with self._db.read() as session:
            key = await self._project_key(session, p, project_id, key_id)
        if key.created_by == f"user:{p.user_id}":
            p.require_project_user(project_id, what)
        else:
            p.require_project_manager(project_id, what)
        return key

    async def set_project_key_disabled(
        self, p: Principal, project_id: str, key_id: str, disabled: bool
    ) -> wire.ProjectApiKey:
        key = await self._changeable_key(p, project_id, key_id, "disable or enable this key")
        await admin.set_key_disabled(self._db, key.id, disabled, p.actor)
        self._keys.forget_key(key.id)
        return await self.get_project_key(p, project_id, key.id)

    async def rotate_project_key(
        self, p: Principal, project_id: str, key_id: str, grace_s: float
    ) -> wire.ProjectApiKey:
        """A new secret (in ``value``, this once); the old one works ``grace_s`` more."""
        key = await self._changeable_key(p, project_id, key_id, "rotate this key")
        issued = await admin.rotate_key(self._db, key.id, grace_s, p.actor)
        self._keys.forget_key(key.id)
        out = await self.get_project_key(p, project_id, key.id)
        return out.model_copy(update={"value": issued.secret})

    async def project_models(self, p: Principal, project_id: str) -> list[str] | None:
        """The project's model allowlist (None: any model)."""
        async with self._db.read() as session:
            project = await self._project(session, p, project_id)
            return decode_list(project.allowed_models)

    async def set_project_models(
        self, p: Principal, project_id: str, models: list[str] | None
    ) -> list[str] | None:
        async with self._db.read() as session:
            project = await self._project(session, p, project_id)
        p.require_project_manager(project.id, "change this project's models")
        await admin.set_project_models(self._db, project.id, models, p.actor)
        self._keys.forget_project(project.id)
        return await self.project_models(p, project.id)

    async def project_caller(self, p: Principal, project_id: str) -> KeyOwner:
        """The caller of a model request the person makes themselves (the
        console's playground): their project pays, under its model allowlist
        and rate limits, as a key of that project would; no key is named
        (the usage record's key is empty). A viewer may not spend (403)."""
        async with self._db.read() as session:
            project = await self._project(session, p, project_id)
        p.require_project_user(project.id, "spend from this project")
        return KeyOwner("", p.account_id, project_id=project.id, project=projects.policy(project))

    # Admin keys --------------------------------------------------------------

    async def list_admin_keys(self, p: Principal, limit: int, after: str | None) -> wire.Page:
        p.require_org_admin("see admin keys")
        async with self._db.read() as session:
            keys = await credentials.admin_keys_of(session, p.account_id)
            owners = {k.user_id: await users.get(session, k.user_id) for k in keys}
        out = [_admin_key_out(k, owners[k.user_id]) for k in keys]
        return page(out, lambda k: k.id, limit, after)

    async def _admin_key(self, session: AsyncSession, p: Principal, key_id: str) -> AdminKey:
        key = await session.get(AdminKey, _checked_id(key_id, "admin_key"))
        if key is None or key.account_id != p.account_id or key.revoked_at is not None:
            raise NotFoundError(f"no admin key {key_id!r}", param="key_id")
        return key

    async def get_admin_key(self, p: Principal, key_id: str) -> wire.AdminApiKey:
        p.require_org_admin("see admin keys")
        async with self._db.read() as session:
            key = await self._admin_key(session, p, key_id)
            return _admin_key_out(key, await users.get(session, key.user_id))

    async def create_admin_key(self, p: Principal, body: wire.AdminKeyCreate) -> wire.AdminApiKey:
        p.require_org_admin("create admin keys")
        async with self._db.transaction() as session:
            key, secret = await credentials.create_admin_key(
                session, p.account_id, p.user_id, body.name
            )
            audit.record(session, p.actor, "admin_key.create", key.id, p.account_id,
                         {"name": body.name, "display": key.display})  # fmt: skip
            return _admin_key_out(key, await users.get(session, p.user_id), value=secret)

    async def delete_admin_key(self, p: Principal, key_id: str) -> wire.Deleted:
        p.require_org_admin("revoke admin keys")
        async with self._db.transaction() as session:
            key = await self._admin_key(session, p, key_id)
            key.revoked_at = utcnow()
            audit.record(session, p.actor, "admin_key.revoke", key.id, p.account_id, {})
        return wire.Deleted(object="organization.admin_api_key.deleted", id=key_id)

    # Usage and costs ---------------------------------------------------------

    async def usage(self, p: Principal, query: usage.UsageQuery, costs: bool) -> dict[str, Any]:
        """Read by everyone in the organisation; a member, of their projects."""
        await self._billing.caught_up()
        if costs:
            return await usage.costs(self._db, p, query)
        return await usage.completions(self._db, p, query)

    async def usage_rows(
        self, p: Principal, query: UsageQuery, group_by: Sequence[str]
    ) -> list[RollupRow]:
        """The console's usage: rollup rows by day and ``group_by`` ("project",
        "key", "model") of what ``p`` sees, filtered as asked (cost included)."""
        await self._billing.caught_up()
        return await usage.rows(self._db, p, query, group_by)

    async def ledger(self, p: Principal, before: date | None) -> billing_view.LedgerPage:
        """The ledger by whole days: owner, admin and viewer (a member: 403)."""
        billing_view.require_ledger_reader(p)
        await self._billing.caught_up()
        return await billing_view.ledger_page(self._db, p, before)

    async def rate_limits(self, p: Principal) -> billing_view.RateLimits:
        """The organisation's tier, limits and current use, and the own limits
        and use of the projects ``p`` sees: everyone in the organisation."""
        tier, limits = await self._billing.tier_and_limits(p.account_id)
        found = await billing_view.project_limits(self._db, p)
        return billing_view.RateLimits(
            tier, limits, await self._billing.in_use(p.account_id),
            [(row, await self._billing.project_in_use(row.project_id)) for row in found],
        )  # fmt: skip

    # Audit log ---------------------------------------------------------------

    async def audit_logs(self, p: Principal, limit: int, after: str | None) -> wire.Page:
        p.require_org_admin("read the audit log")
        _check_limit(limit)
        before = None
        if after is not None:
            number = after.removeprefix("audit_log-")
            if not (number.isascii() and number.isdigit()) or len(number) > 18:
                raise BadRequestError("after: not an audit log id", param="after")
            before = int(number)
        async with self._db.read() as session:
            rows = await audit.events(session, p.account_id, limit + 1, before_id=before)
        out = [
            {
                "object": "organization.audit_log",
                "id": f"audit_log-{row.id}",
                "type": row.action,
                "effective_at": wire.unix(row.at),
                "actor": {"type": "session", "who": row.actor, "ip_address": row.address},
                "target": row.target,
                "changes": row.changes,
            }
            for row in rows
        ]
        chunk = out[:limit]
        return wire.Page(
            data=chunk,
            first_id=chunk[0]["id"] if chunk else None,
            last_id=chunk[-1]["id"] if chunk else None,
            has_more=len(out) > limit,
        )
