"""batches and their lines

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNIX = sa.BigInteger()
STAGES = ("in_progress", "finalizing", "completed", "failed", "expired", "cancelling", "cancelled")


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("api_key_id", sa.String(40), sa.ForeignKey("api_keys.id"), nullable=True),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("input_file_id", sa.String(40), nullable=False),
        sa.Column("completion_window", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("model", sa.String(64), nullable=True),
        sa.Column("metadata_json", sa.Text(), nullable=False),
        sa.Column("errors_json", sa.Text(), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("output_file_id", sa.String(40), nullable=True),
        sa.Column("error_file_id", sa.String(40), nullable=True),
        sa.Column("created_at", UNIX, nullable=False),
        sa.Column("expires_at", UNIX, nullable=False),
        *[sa.Column(f"{stage}_at", UNIX, nullable=True) for stage in STAGES],
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claim_until", sa.Float(), nullable=True),
    )
    op.create_index("ix_batches_account_id", "batches", ["account_id"])
    op.create_index("ix_batches_status", "batches", ["status"])
    op.create_table(
        "batch_lines",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("batch_id", sa.String(40), sa.ForeignKey("batches.id"), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("custom_id", sa.String(512), nullable=False),
        sa.Column("body_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result_json", sa.Text(), nullable=True),
        sa.UniqueConstraint("batch_id", "line"),
    )
    op.create_index("ix_batch_lines_batch_id", "batch_lines", ["batch_id"])


def downgrade() -> None:
    op.drop_table("batch_lines")
    op.drop_table("batches")
