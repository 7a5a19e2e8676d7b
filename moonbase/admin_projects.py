"""Operator actions on what a project's keys may do: its model allowlist and
its own rate limits (auth/project_policy.py), each change in the audit log in
its own transaction.

A gateway sees a change within its key cache's TTL (``state_refresh_s``): the
project's policy is cached with each of its keys. ``AdminService`` also drops
this gateway's cached keys of the project at once.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from moonbase import bounds
from moonbase.auth.actor import Actor, cli_actor
from moonbase.auth.key_policy import check_models, decode_list, encode_list
from moonbase.auth.project_policy import ProjectLimits
from moonbase.billing.account_cache import limits_of
from moonbase.billing.project_limits import check_within
from moonbase.billing.tiers import tier_for
from moonbase.catalog import SPECS_BY_ID
from moonbase.errors import BadRequestError, NotFoundError
from moonbase.store.database import Database
from moonbase.store.repositories import audit, projects
from moonbase.store.tables import Account, Project

_CAPS = {
    "concurrency": bounds.MAX_REQUEST_LIMIT,
    "rpm": bounds.MAX_REQUEST_LIMIT,
    "tpm": bounds.MAX_TOKEN_LIMIT,
    "tpd": bounds.MAX_TOKEN_LIMIT,
}


def limits_of_project(project: Project) -> ProjectLimits:
    return projects.policy(project).limits


def rules_of(project: Project) -> dict[str, object]:
    """The project's allowlist and limits, as the audit log and listings show them."""
    return {
        "allowed_models": decode_list(project.allowed_models),
        **limits_of_project(project).as_dict(),
    }


async def _project(session: AsyncSession, project_id: str) -> Project:
    if bounds.ID.check(project_id, "project") is not None:  # no project has such an id
        raise NotFoundError(f"no project {project_id[:100]!r}", param="project")
    project = await projects.get(session, project_id)
    if project is None:
        raise NotFoundError(f"no project {project_id!r}", param="project")
    return project


async def set_models(
    db: Database, project_id: str, models: list[str] | None, actor: Actor | None = None
) -> Project:
    """Let the project's keys use only ``models`` (None: any model)."""
    allowed = None if models is None else check_models(models, set(SPECS_BY_ID))
    async with db.transaction() as session:
        project = await _project(session, project_id)
        before = rules_of(project)
        project.allowed_models = encode_list(allowed)
        audit.record(session, actor or cli_actor(), "project.models", project.id,
                     project.account_id, audit.diff(before, rules_of(project)))  # fmt: skip
        return project


async def set_limits(
    db: Database, project_id: str, limits: ProjectLimits, actor: Actor | None = None
) -> Project:
    """Set the project's own rate limits (a None: only the organisation's of that
    kind); each must be no higher than the organisation's current limit."""
    for name, value in limits.as_dict().items():
        if value is not None and not 1 <= value <= _CAPS[name]:
            raise BadRequestError(f"{name} must be between 1 and {_CAPS[name]}", param=name)
    async with db.transaction() as session:
        project = await _project(session, project_id)
        account = await session.get(Account, project.account_id)
        assert account is not None  # a project's account is never deleted
        tier = tier_for(account.topped_up_micro, account.tier_override).level
        check_within(limits, limits_of(account), tier)
        before = rules_of(project)
        project.limit_concurrency = limits.concurrency
        project.limit_rpm = limits.rpm
        project.limit_tpm = limits.tpm
        project.limit_tpd = limits.tpd
        audit.record(session, actor or cli_actor(), "project.limits", project.id,
                     project.account_id, audit.diff(before, rules_of(project)))  # fmt: skip
        return project
