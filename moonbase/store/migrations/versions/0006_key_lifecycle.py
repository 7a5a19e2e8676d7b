"""API keys get a lifecycle: expiry, disabling, IP and model allowlists,
rotation with a grace period, and the time each was last used

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    ("expires_at", sa.DateTime(timezone=True)),
    ("disabled_at", sa.DateTime(timezone=True)),
    ("allowed_ips", sa.Text()),
    ("allowed_models", sa.Text()),
    ("last_used_at", sa.DateTime(timezone=True)),
    ("previous_hash", sa.String(64)),
    ("previous_valid_until", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN, never SQLite's batch copy: dropping the old
    # api_keys table breaks the foreign keys of usage records and batches.
    for name, kind in _COLUMNS:
        op.add_column("api_keys", sa.Column(name, kind, nullable=True))
    op.create_index("ix_api_keys_previous_hash", "api_keys", ["previous_hash"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as table:
        table.drop_index("ix_api_keys_previous_hash")
        for name, _ in reversed(_COLUMNS):
            table.drop_column(name)
