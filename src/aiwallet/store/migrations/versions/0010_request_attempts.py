"""Each attempt at a provider for a request: retries and fallbacks in the request log

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

``request_attempts``: one row per attempt the engine made for a request (n = 1, 2, ...):
the provider and model it went to, when it started, the provider's HTTP status (None when no
answer came), a stable error code when it failed, and how long it took. Written with the
request's own row, in the same transaction, when the request ends.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "request_attempts",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("n", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Integer, nullable=True),
        sa.Column("error", sa.String(64), nullable=True),
        sa.Column("latency_ms", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("request_id", "n", name=op.f("pk_request_attempts")),
    )


def downgrade() -> None:
    op.drop_table("request_attempts")
