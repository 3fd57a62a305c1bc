"""requests say when the provider billed more than the request's reservation

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

A reservation is an upper bound on what a provider may bill for a request; a provider that
breaks its own limits is billed as it reports, and the request-log row says so
(``over_reserved``), so the user is told and ``aiwallet usage`` reports it apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(
            sa.Column("over_reserved", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("over_reserved")
