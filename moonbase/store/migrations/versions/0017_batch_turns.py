"""batches.served_at: when a worker last ended a turn on the batch

A worker ran the oldest batch to its end, so one account's 50,000 lines held
every other account's batches back for hours. Workers now run a batch for a
turn (``batches.turn_s``) and then claim the batch of the account they served
least recently.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"  # re-point at the newest revision when merging
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("served_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.drop_column("served_at")
