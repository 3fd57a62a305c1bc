"""Providers as their users connect them: key age, per-app provider keys, reported cost

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

``providers.key_set_at``: when the provider's key was stored (its age on the Providers page,
the reminder to rotate it); existing rows start from their last update.
``provider_subkeys``: one provider-side key per (provider, app) made with the provider's
management key (OpenRouter), capped like the app's budget, disabled while the app is paused
or revoked, deleted with it: a second budget layer that the provider itself enforces.
``ledger.catalog_cost_nano`` and ``requests.catalog_cost_nano`` / ``cost_differs``: where the
provider reported a request's cost (billed as such, token source ``provider_cost``), the
catalog's figure beside it, and whether the two differ by more than 1 %.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("providers") as batch:
        batch.add_column(sa.Column("key_set_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE providers SET key_set_at = updated_at WHERE secret_ref IS NOT NULL")
    with op.batch_alter_table("ledger") as batch:
        batch.add_column(sa.Column("catalog_cost_nano", sa.BigInteger, nullable=True))
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("catalog_cost_nano", sa.BigInteger, nullable=True))
        batch.add_column(
            sa.Column("cost_differs", sa.Boolean, nullable=False, server_default=sa.false())
        )
    op.create_table(
        "provider_subkeys",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("provider", sa.String(48), nullable=False),
        sa.Column("app_id", sa.Integer, nullable=False),
        sa.Column("key_id", sa.String(128), nullable=False),
        sa.Column("secret_ref", sa.String(200), nullable=False),
        sa.Column("key_hint", sa.String(32)),
        sa.Column("limit_nano", sa.BigInteger),
        sa.Column("limit_reset", sa.String(16)),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("usage", sa.JSON),
        sa.Column("problem", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_subkeys")),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
            name=op.f("fk_provider_subkeys_app_id_apps"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("provider", "app_id", name="uq_provider_subkeys_provider_app"),
    )


def downgrade() -> None:
    op.drop_table("provider_subkeys")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("cost_differs")
        batch.drop_column("catalog_cost_nano")
    with op.batch_alter_table("ledger") as batch:
        batch.drop_column("catalog_cost_nano")
    with op.batch_alter_table("providers") as batch:
        batch.drop_column("key_set_at")
