"""failed_sign_ins: the sign-in throttle's failures, shared by every gateway

The throttle counted failures in each process's memory, so N gateways let
N times the allowed guesses through. Rows older than the window are deleted
as new ones are written (by ``failed_at``).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"  # re-point at the newest revision when merging
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "failed_sign_ins",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("email_hash", sa.String(64), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_failed_sign_ins_email_at", "failed_sign_ins", ["email_hash", "failed_at"])
    op.create_index("ix_failed_sign_ins_failed_at", "failed_sign_ins", ["failed_at"])


def downgrade() -> None:
    op.drop_table("failed_sign_ins")
