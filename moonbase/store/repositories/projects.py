"""Projects: the parts of an account that hold keys and budgets."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from moonbase.auth.key_policy import decode_list
from moonbase.auth.project_policy import ANY_PROJECT, ProjectLimits, ProjectPolicy
from moonbase.store.repositories import usage_rollups
from moonbase.store.tables import Project

DEFAULT_PROJECT = "default"


def default_project_id(account_id: str) -> str:
    """The default project's id: the account id's random part (as migration 0008 made them)."""
    return "proj-" + account_id.removeprefix("acct-")


def owning(account_id: str, project_id: str | None) -> str:
    """The project a caller's files and batches belong to: its key's, or the
    account's default project for a caller that names none (as NULL does in
    the files and batches tables)."""
    return project_id or default_project_id(account_id)


def policy(project: Project | None) -> ProjectPolicy:
    """What the keys of ``project`` may do, from its row (None: no limits)."""
    if project is None:
        return ANY_PROJECT
    models = decode_list(project.allowed_models)
    return ProjectPolicy(
        name=project.name,
        models=frozenset(models) if models is not None else None,
        limits=ProjectLimits(
            concurrency=project.limit_concurrency,
            rpm=project.limit_rpm,
            tpm=project.limit_tpm,
            tpd=project.limit_tpd,
        ),
    )


def new_default(account_id: str) -> Project:
    return Project(id=default_project_id(account_id), account_id=account_id, name=DEFAULT_PROJECT)


async def create(session: AsyncSession, project: Project) -> Project:
    session.add(project)
    await session.flush()
    return project


async def get(session: AsyncSession, project_id: str) -> Project | None:
    return await session.get(Project, project_id)


async def by_name(session: AsyncSession, account_id: str, name: str) -> Project | None:
    return await session.scalar(
        select(Project).where(Project.account_id == account_id, Project.name == name)
    )


async def of_account(session: AsyncSession, account_id: str) -> list[Project]:
    query = select(Project).where(Project.account_id == account_id).order_by(Project.created_at)
    return list(await session.scalars(query))


async def spent_since(session: AsyncSession, project_id: str, since: datetime) -> int:
    """Micro-yuan the project's requests cost since ``since`` (committed
    charges), from the daily rollups: whole UTC days, from ``since``'s own on
    (budgets ask from a day's or a month's start)."""
    return await usage_rollups.cost_since(session, project_id, usage_rollups.utc_day(since))
