"""ledger: a partial index of the entries other than charges (the console's billing page)

One charge entry is written per request, so an organisation's ledger is
mostly charges; the billing page lists the rest (top-ups, vouchers, refunds,
adjustments) newest first, and sums charges per day from the rollups. This
index holds only the rest, so that list reads a handful of rows, not every
charge (bench/console_bench.py: about a second without it at 1M records).

Revision ID: 0015
Revises: 0012
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0012"  # re-point at the newest revision when merging
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOT_CHARGES = sa.text("kind <> 'charge'")


def upgrade() -> None:
    op.create_index(
        "ix_ledger_entries_account_credits",
        "ledger_entries",
        ["account_id", "created_at"],
        sqlite_where=NOT_CHARGES,
        postgresql_where=NOT_CHARGES,
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_account_credits", table_name="ledger_entries")
