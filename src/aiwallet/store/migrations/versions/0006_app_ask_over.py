"""apps may ask the user before any single request whose worst case is over a threshold

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

``apps.ask_over_nano``: a request of this app whose worst case (its reservation) is over this
many nano-dollars is held and prompted with its cost before it is served (None: the wallet's
threshold applies, if it has one).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("apps") as batch:
        batch.add_column(sa.Column("ask_over_nano", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("apps") as batch:
        batch.drop_column("ask_over_nano")
