"""A project's spend alerts and the webhook they are sent to."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from moonbase.store.tables import Project, ProjectWebhook, SpendAlert


async def of_project(session: AsyncSession, project_id: str) -> list[SpendAlert]:
    query = (
        select(SpendAlert)
        .where(SpendAlert.project_id == project_id)
        .order_by(SpendAlert.period, SpendAlert.threshold_micro)
    )
    return list(await session.scalars(query))


async def count(session: AsyncSession, project_id: str) -> int:
    query = select(func.count()).select_from(SpendAlert)
    return int(await session.scalar(query.where(SpendAlert.project_id == project_id)) or 0)


async def get(session: AsyncSession, project_id: str, alert_id: str) -> SpendAlert | None:
    return await session.scalar(
        select(SpendAlert).where(SpendAlert.id == alert_id, SpendAlert.project_id == project_id)
    )


async def remove(session: AsyncSession, alert_id: str) -> None:
    await session.execute(delete(SpendAlert).where(SpendAlert.id == alert_id))


async def armed(session: AsyncSession) -> list[tuple[SpendAlert, str]]:
    """Every alert of a project that has a webhook, with the project's account id."""
    query = (
        select(SpendAlert, Project.account_id)
        .join(ProjectWebhook, ProjectWebhook.project_id == SpendAlert.project_id)
        .join(Project, Project.id == SpendAlert.project_id)
    )
    return [(alert, account_id) for alert, account_id in (await session.execute(query)).all()]


async def webhook(session: AsyncSession, project_id: str) -> ProjectWebhook | None:
    return await session.get(ProjectWebhook, project_id)


async def webhooks(session: AsyncSession, project_ids: set[str]) -> dict[str, ProjectWebhook]:
    query = select(ProjectWebhook).where(ProjectWebhook.project_id.in_(project_ids))
    return {hook.project_id: hook for hook in await session.scalars(query)}


async def remove_webhook(session: AsyncSession, project_id: str) -> None:
    await session.execute(delete(ProjectWebhook).where(ProjectWebhook.project_id == project_id))
