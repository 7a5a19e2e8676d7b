"""files and batches owned by projects; project model allowlists and rate limits

Every existing file goes to its account's ``default`` project (a file names no
key); every batch to the project of the key that created it, else the
default one. Projects get an optional model allowlist (a JSON list; NULL: any
model) and optional rate limits (NULL: only the organisation's).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PROJECT_COLUMNS = (
    ("allowed_models", sa.Text()),
    ("limit_concurrency", sa.Integer()),
    ("limit_rpm", sa.Integer()),
    ("limit_tpm", sa.BigInteger()),
    ("limit_tpd", sa.BigInteger()),
)

_DEFAULT_PROJECT = (
    "(SELECT p.id FROM projects p WHERE p.account_id = {table}.account_id AND p.name = 'default')"
)


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN, never SQLite's batch copy: dropping the old
    # files or batches table breaks the foreign keys pointing at them (0008).
    for table in ("files", "batches"):
        op.add_column(table, sa.Column("project_id", sa.String(40), nullable=True))
        op.create_index(f"ix_{table}_project_id", table, ["project_id"])
    op.execute(f"UPDATE files SET project_id = {_DEFAULT_PROJECT.format(table='files')}")
    op.execute(
        "UPDATE batches SET project_id = COALESCE((SELECT k.project_id FROM api_keys k "
        f"WHERE k.id = batches.api_key_id), {_DEFAULT_PROJECT.format(table='batches')})"
    )
    for name, kind in _PROJECT_COLUMNS:
        op.add_column("projects", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+) for the same reason: no table copies.
    for name, _ in reversed(_PROJECT_COLUMNS):
        op.drop_column("projects", name)
    for table in ("batches", "files"):
        op.drop_index(f"ix_{table}_project_id", table_name=table)
        op.drop_column(table, "project_id")
