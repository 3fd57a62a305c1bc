"""Which wallet's engine took each reservation, so that a start recovers only its own

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

``reservations.owner``: the id of the data dir whose engine took the reservation (a random id
kept in the data dir). Several wallets may share one PostgreSQL ledger; an engine starting
recovers (bills at worst case) the open reservations its own data dir's dead engine left, and
those with no owner (taken outside any engine, and every row written before this revision),
never another wallet's in-flight ones. Only one engine runs per data dir (its lock), so an
open reservation of this data dir at this engine's start is a dead engine's.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reservations") as batch:
        batch.add_column(sa.Column("owner", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reservations") as batch:
        batch.drop_column("owner")
