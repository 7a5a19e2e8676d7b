"""balances, ledger, rate-limit admissions, usage cost

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MICRO = sa.BigInteger()


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("cash_micro", MICRO, nullable=False, server_default="0"))
        batch.add_column(sa.Column("voucher_micro", MICRO, nullable=False, server_default="0"))
        batch.add_column(sa.Column("topped_up_micro", MICRO, nullable=False, server_default="0"))
        batch.add_column(sa.Column("tier_override", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("limit_concurrency", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("limit_rpm", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("limit_tpm", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("limit_tpd", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("cost_micro", MICRO, nullable=False, server_default="0"))
        batch.add_column(sa.Column("latency_ms", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "ledger_entries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("cash_micro", MICRO, nullable=False),
        sa.Column("voucher_micro", MICRO, nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("reference", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ledger_entries_account_id", "ledger_entries", ["account_id"])
    op.create_table(
        "admissions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False, unique=True),
        sa.Column("admitted_at", sa.Float(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("finished", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_admissions_account_time", "admissions", ["account_id", "admitted_at"])


def downgrade() -> None:
    op.drop_table("admissions")
    op.drop_table("ledger_entries")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("latency_ms")
        batch.drop_column("cost_micro")
    with op.batch_alter_table("accounts") as batch:
        for column in (
            "limit_tpd",
            "limit_tpm",
            "limit_rpm",
            "limit_concurrency",
            "tier_override",
            "topped_up_micro",
            "voucher_micro",
            "cash_micro",
        ):
            batch.drop_column(column)
