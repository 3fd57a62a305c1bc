"""hourly spend rollup for charts (SQLite, kept by a trigger); indexes for reports

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

Charts sum spend per bucket over up to a year of ledger rows. On SQLite a trigger keeps
``spend_hourly`` (spend per UTC hour, app and model) in the same transaction as every ledger
insert, so a sum over the rollup equals the sum over the ledger at any instant; SQLite's single
writer lock means the upsert can never deadlock. On PostgreSQL (where several wallets may
share a ledger and concurrent upserts could lock rows in opposite orders) a covering index
lets the same sums run as index-only scans instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The ledger's ts is stored as '%Y-%m-%d %H:%M:%S.%f' text on SQLite: its first 13
# characters are the UTC hour.
_TRIGGER = """
CREATE TRIGGER ledger_spend_hourly AFTER INSERT ON ledger
WHEN NEW.kind = 'spend'
BEGIN
    INSERT INTO spend_hourly (hour, app_id, model, amount_nano, entries)
    VALUES (substr(NEW.ts, 1, 13) || ':00:00.000000', coalesce(NEW.app_id, 0),
            coalesce(NEW.model, ''),
            NEW.amount_nano, 1)
    ON CONFLICT (hour, app_id, model) DO UPDATE
        SET amount_nano = amount_nano + excluded.amount_nano, entries = entries + 1;
END
"""

_BACKFILL = """
INSERT INTO spend_hourly (hour, app_id, model, amount_nano, entries)
SELECT substr(ts, 1, 13) || ':00:00.000000', coalesce(app_id, 0), coalesce(model, ''),
       sum(amount_nano), count(*)
FROM ledger WHERE kind = 'spend'
GROUP BY 1, 2, 3
"""


def upgrade() -> None:
    op.create_index("ix_requests_model", "requests", ["model"])
    if op.get_bind().dialect.name == "sqlite":
        op.create_table(
            "spend_hourly",
            sa.Column("hour", sa.String(length=26), nullable=False),
            sa.Column("app_id", sa.Integer(), nullable=False),
            sa.Column("model", sa.String(length=200), nullable=False),
            sa.Column("amount_nano", sa.BigInteger(), nullable=False),
            sa.Column("entries", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("hour", "app_id", "model", name="pk_spend_hourly"),
        )
        op.execute(_TRIGGER)
        op.execute(_BACKFILL)
    else:
        op.create_index(
            "ix_ledger_spend_cover", "ledger", ["kind", "ts", "app_id", "model", "amount_nano"]
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS ledger_spend_hourly")
        op.drop_table("spend_hourly")
    else:
        op.drop_index("ix_ledger_spend_cover", table_name="ledger")
    op.drop_index("ix_requests_model", table_name="requests")
