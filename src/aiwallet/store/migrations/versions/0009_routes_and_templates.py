"""Routes (fallback chains), prompt templates, per-app budget-aware downgrade

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

``routes``: a user-named chain of ``provider/model`` targets tried in order on failure.
``prompt_templates``: stored, versioned prompts with named variables (never completions).
``apps.downgrade``: serve a cheaper model of a route when the budget cannot pay for the one
asked (off by default).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "routes",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("targets", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routes")),
        sa.UniqueConstraint("name", name=op.f("uq_routes_name")),
    )
    op.create_table(
        "prompt_templates",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("messages", sa.JSON, nullable=False),
        sa.Column("variables", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_templates")),
        sa.UniqueConstraint("name", "version", name="uq_prompt_templates_name_version"),
    )
    with op.batch_alter_table("apps") as batch:
        batch.add_column(
            sa.Column("downgrade", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("apps") as batch:
        batch.drop_column("downgrade")
    op.drop_table("prompt_templates")
    op.drop_table("routes")
