"""reservations remember their provider, model and price row

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

A reservation left open by a killed engine is billed at restart at its reserved worst case;
with these columns that ledger row records the price row and model it was reserved against,
like every other cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reservations") as batch:
        batch.add_column(sa.Column("provider", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("model", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("price_row_ref", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reservations") as batch:
        batch.drop_column("price_row_ref")
        batch.drop_column("model")
        batch.drop_column("provider")
