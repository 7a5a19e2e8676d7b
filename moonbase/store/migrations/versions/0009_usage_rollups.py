"""daily usage rollups (organisation x project x key x model x day)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_daily",
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("project_id", sa.String(40), nullable=False),
        sa.Column("api_key_id", sa.String(40), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_micro", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "day", "project_id", "api_key_id", "model"),
    )
    op.create_index("ix_usage_daily_project_day", "usage_daily", ["project_id", "day"])
    op.execute(backfill(op.get_bind().dialect.name))


def backfill(dialect: str) -> str:
    """Every existing record, summed per UTC day (bench/usage_query_bench.py
    builds its rollups with this too). PostgreSQL's date() of a timestamptz
    takes the session's time zone: convert to UTC first. SQLite keeps times as
    text; SQLAlchemy writes them in UTC, and date() applies an offset suffix
    where a row has one, so it yields the UTC day either way."""
    if dialect == "postgresql":
        day = "CAST(created_at AT TIME ZONE 'UTC' AS DATE)"
    else:
        day = "date(created_at)"
    return (
        "INSERT INTO usage_daily (account_id, day, project_id, api_key_id, model, requests, "
        "prompt_tokens, cached_tokens, completion_tokens, cost_micro) "
        f"SELECT account_id, {day}, COALESCE(project_id, ''), COALESCE(api_key_id, ''), model, "
        "COUNT(*), SUM(prompt_tokens), SUM(cached_tokens), SUM(completion_tokens), "
        "SUM(cost_micro) FROM usage_records "
        f"GROUP BY account_id, {day}, COALESCE(project_id, ''), COALESCE(api_key_id, ''), model"
    )


def downgrade() -> None:
    op.drop_index("ix_usage_daily_project_day", table_name="usage_daily")
    op.drop_table("usage_daily")
