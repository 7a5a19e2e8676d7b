"""projects inside accounts: every account gets a ``default`` project holding
its existing keys, and usage records name their key's project

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("daily_budget_micro", sa.BigInteger(), nullable=True),
        sa.Column("monthly_budget_micro", sa.BigInteger(), nullable=True),
        sa.UniqueConstraint("account_id", "name", name="uq_projects_account_name"),
    )
    op.create_index("ix_projects_account_id", "projects", ["account_id"])
    # Every account's default project: "proj-" and the account id's random part.
    op.execute(
        "INSERT INTO projects (id, account_id, name, created_at) "
        "SELECT 'proj-' || substr(id, 6), id, 'default', created_at FROM accounts"
    )
    # Plain ALTER TABLE ADD COLUMN, never SQLite's batch copy: dropping the old
    # api_keys table breaks the foreign keys of usage records and batches. The
    # key's project is a foreign key where ALTER can add one (PostgreSQL).
    op.add_column("api_keys", sa.Column("project_id", sa.String(40), nullable=True))
    if op.get_bind().dialect.name != "sqlite":
        op.create_foreign_key(
            "fk_api_keys_project_id", "api_keys", "projects", ["project_id"], ["id"]
        )
    op.create_index("ix_api_keys_project_id", "api_keys", ["project_id"])
    op.execute(
        "UPDATE api_keys SET project_id = (SELECT p.id FROM projects p "
        "WHERE p.account_id = api_keys.account_id AND p.name = 'default')"
    )
    op.add_column("usage_records", sa.Column("project_id", sa.String(40), nullable=True))
    op.create_index("ix_usage_records_project_time", "usage_records", ["project_id", "created_at"])
    op.execute(
        "UPDATE usage_records SET project_id = (SELECT k.project_id FROM api_keys k "
        "WHERE k.id = usage_records.api_key_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as table:
        table.drop_index("ix_usage_records_project_time")
        table.drop_column("project_id")
    op.drop_index("ix_api_keys_project_id", table_name="api_keys")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("fk_api_keys_project_id", "api_keys", type_="foreignkey")
    with op.batch_alter_table("api_keys") as table:
        table.drop_column("project_id")
    op.drop_index("ix_projects_account_id", table_name="projects")
    op.drop_table("projects")
