"""x402 payments from the user's Solana wallet, and provider options

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

``payments``: one row per x402 payment the wallet signed (for a request, or a prepaid
router's top-up): payee, network, asset, amount in atomic units and in nano-dollars, the
payer's own signature (what finds the transaction on chain after a crash), the transaction
signature once settled (unique: billed once per signature), and its state (signed →
settled | failed; ``held``: the router said it did not settle, so its amount stays held
until the chain tells; ``unconfirmed``: billed while the chain could not yet tell).
``providers.options``: per-provider settings (an x402 router's prepaid mode).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payments",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("app_id", sa.Integer, nullable=True),
        sa.Column("provider", sa.String(48), nullable=False),
        sa.Column("payee", sa.String(64), nullable=False),
        sa.Column("network", sa.String(64), nullable=False),
        sa.Column("asset", sa.String(64), nullable=False),
        sa.Column("amount_atomic", sa.BigInteger, nullable=False),
        sa.Column("amount_nano", sa.BigInteger, nullable=False),
        sa.Column("payer", sa.String(64), nullable=False),
        sa.Column("payer_signature", sa.String(100), nullable=False),
        sa.Column("tx_signature", sa.String(100)),
        sa.Column("blockhash", sa.String(64), nullable=False),
        sa.Column("resource", sa.String(500)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("billed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("flagged", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("note", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("amount_atomic > 0", name=op.f("ck_payments_amount_positive")),
        sa.CheckConstraint(
            "state IN ('signed', 'held', 'settled', 'failed', 'unconfirmed')",
            name=op.f("ck_payments_state_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_payments_app_id_apps"), ondelete="SET NULL"
        ),
        sa.UniqueConstraint("payer_signature", name=op.f("uq_payments_payer_signature")),
        sa.UniqueConstraint("tx_signature", name=op.f("uq_payments_tx_signature")),
    )
    op.create_index("ix_payments_state", "payments", ["state"])
    op.create_index("ix_payments_created", "payments", ["created_at"])
    op.create_index("ix_payments_request", "payments", ["request_id"])
    with op.batch_alter_table("providers") as batch:
        batch.add_column(sa.Column("options", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("providers") as batch:
        batch.drop_column("options")
    op.drop_table("payments")
