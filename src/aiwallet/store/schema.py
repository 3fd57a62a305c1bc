"""The tables. Money columns are BigInteger nano-dollars; times are aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

apps = Table(
    "apps",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Column("paused", Boolean, nullable=False, default=False),
    Column("last_used_at", UTCDateTime),
    Column("notes", Text),
    Column("rpm_limit", Integer),  # requests per minute (None: no limit)
    Column("tpm_limit", Integer),  # tokens per minute
    Column("concurrency_limit", Integer),  # requests in flight
    # ask the user before a single request whose worst case is over this (migration 0006)
    Column("ask_over_nano", BigInteger),
    # serve a cheaper model of a route when the budget cannot pay for the one asked (0009)
    Column("downgrade", Boolean, nullable=False, default=False, server_default=false()),
)

# A user-named chain of provider/model targets, tried in order on failure (0009).
routes = Table(
    "routes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("targets", JSON, nullable=False),  # ["anthropic/claude-sonnet-4-5", "openai/gpt-4.1"]
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Stored prompts with named variables, versioned; never a completion (0009).
prompt_templates = Table(
    "prompt_templates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("messages", JSON, nullable=False),  # [{"role", "content"}] with {{variables}}
    Column("variables", JSON, nullable=False),  # the names used, sorted
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("name", "version", name="uq_prompt_templates_name_version"),
)

grants = Table(
    "grants",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("app_id", Integer, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    Column("scopes", JSON, nullable=False),  # model patterns: "gpt-4o-mini", "openai/*", "*"
    Column("budget_spec", String(64)),
    Column("issued_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
    Column("receipt", JSON),
    Index("ix_grants_app", "app_id"),
)

budgets = Table(
    "budgets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("scope", String(16), nullable=False),  # "wallet" or "app"
    Column("app_id", Integer, ForeignKey("apps.id", ondelete="CASCADE")),
    Column("amount_nano", BigInteger, nullable=False),
    Column("period", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("amount_nano >= 0", name="amount_not_negative"),
    CheckConstraint("scope IN ('wallet', 'app')", name="scope_known"),
    UniqueConstraint("scope", "app_id", name="uq_budgets_scope_app"),
)

budget_counters = Table(
    "budget_counters",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("budget_id", Integer, ForeignKey("budgets.id", ondelete="CASCADE"), nullable=False),
    Column("window_key", String(48), nullable=False),  # "day:<UTC start ISO>", "total:total"
    Column("window_end", UTCDateTime),
    Column("spent_nano", BigInteger, nullable=False, default=0),
    Column("reserved_nano", BigInteger, nullable=False, default=0),
    CheckConstraint("reserved_nano >= 0", name="reserved_not_negative"),
    UniqueConstraint("budget_id", "window_key", name="uq_budget_counters_window"),
)

reservations = Table(
    "reservations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("request_id", String(64), nullable=False),
    Column("app_id", Integer, ForeignKey("apps.id", ondelete="SET NULL")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("amount_nano", BigInteger, nullable=False),
    Column("counter_ids", JSON, nullable=False),
    Column("state", String(16), nullable=False),  # open | settled | released
    Column("closed_at", UTCDateTime),
    # What it was reserved against, so that a crash recovery bills it with its price row.
    Column("provider", String(64)),
    Column("model", String(200)),
    Column("price_row_ref", String(200)),
    # the data dir whose engine took it (None: taken outside an engine, or before 0011): a
    # start recovers only its own and those (several wallets may share a PostgreSQL ledger)
    Column("owner", String(64)),
    Index("ix_reservations_state", "state"),
)

ledger = Table(
    "ledger",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ts", UTCDateTime, nullable=False),
    Column("kind", String(16), nullable=False),  # spend | topup | refund | adjustment
    Column("app_id", Integer, ForeignKey("apps.id", ondelete="SET NULL")),
    Column("request_id", String(64)),
    Column("amount_nano", BigInteger, nullable=False),
    Column("provider", String(64)),
    Column("model", String(200)),
    Column("price_row_ref", String(200)),
    Column("price_row", JSON),
    Column("token_source", String(16)),
    Column("note", Text),
    # what the catalog's price row makes of the request's usage, kept beside a cost the
    # provider reported (token_source "provider_cost"); None otherwise (0008)
    Column("catalog_cost_nano", BigInteger),
    Index("ix_ledger_app_ts", "app_id", "ts"),
    Index("ix_ledger_ts", "ts"),
    UniqueConstraint("request_id", name="uq_ledger_request"),
)

# SQLite only (migration 0003): spend per UTC hour, app (0: none) and model ('': none), kept
# exact by a trigger on every ledger insert. ``hour`` is text in the ledger's own format.
spend_hourly = Table(
    "spend_hourly",
    metadata,
    Column("hour", UTCDateTime, primary_key=True),
    Column("app_id", Integer, primary_key=True),
    Column("model", String(200), primary_key=True),
    Column("amount_nano", BigInteger, nullable=False),
    Column("entries", Integer, nullable=False),
)

requests = Table(
    "requests",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("ts", UTCDateTime, nullable=False),
    Column("app_id", Integer, ForeignKey("apps.id", ondelete="SET NULL")),
    Column("endpoint", String(64), nullable=False),
    Column("model", String(200)),
    Column("provider", String(64)),
    Column("input_tokens", BigInteger, nullable=False, default=0),
    Column("cache_read_tokens", BigInteger, nullable=False, default=0),
    Column("cache_write_tokens", BigInteger, nullable=False, default=0),
    Column("output_tokens", BigInteger, nullable=False, default=0),
    Column("reasoning_tokens", BigInteger, nullable=False, default=0),
    Column("cost_nano", BigInteger, nullable=False, default=0),
    Column("token_source", String(16)),
    Column("latency_ms", Integer),
    Column("ttfb_ms", Integer),
    Column("status", Integer, nullable=False),
    Column("error_code", String(64)),
    Column("stream", Boolean, nullable=False, default=False),
    # the provider billed more than the request's reservation (its bound): shown and notified
    Column("over_reserved", Boolean, nullable=False, default=False, server_default=false()),
    # the provider reported the cost (billed) and the catalog's figure differs by over 1 % (0008)
    Column("catalog_cost_nano", BigInteger),
    Column("cost_differs", Boolean, nullable=False, default=False, server_default=false()),
    Index("ix_requests_ts", "ts"),
    Index("ix_requests_app_ts", "app_id", "ts"),
    Index("ix_requests_model", "model"),
)

# One row per attempt at a provider for a request (retries, fallbacks), written with the
# request's own row when it ends (0010). No foreign key: the attempts of a request whose row
# an older engine never wrote still say what was tried.
request_attempts = Table(
    "request_attempts",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("n", Integer, primary_key=True, autoincrement=False),  # 1, 2, ... in order
    Column("provider", String(64), nullable=False),
    Column("model", String(200), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("status", Integer),  # the provider's HTTP status; None: no answer came
    Column("error", String(64)),  # why it failed (a stable code), None when it answered 2xx
    Column("latency_ms", Integer, nullable=False),  # until its answer's headers (or failure)
)

audit = Table(
    "audit",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("ts", UTCDateTime, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(100), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("details", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# One row; appends lock it so that concurrent writers cannot fork the chain.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)

providers = Table(
    "providers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(48), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("base_url", String(500), nullable=False),
    Column("secret_ref", String(200)),
    Column("key_hint", String(32)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("last_test_at", UTCDateTime),
    Column("last_test_ok", Boolean),
    Column("options", JSON),  # per-kind settings: {"prepaid": true} for an x402 router (0007)
    Column("key_set_at", UTCDateTime),  # when its key was stored (age, rotation reminder; 0008)
)

# One provider-side key per (provider, app), made with the provider's management key and
# capped like the app's budget: a second budget layer the provider enforces (0008).
provider_subkeys = Table(
    "provider_subkeys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("provider", String(48), nullable=False),
    Column("app_id", Integer, ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    Column("key_id", String(128), nullable=False),  # the provider's id for it (OpenRouter hash)
    Column("secret_ref", String(200), nullable=False),  # the vault entry holding the key
    Column("key_hint", String(32)),
    Column("limit_nano", BigInteger),  # None: no limit
    Column("limit_reset", String(16)),  # daily | weekly | monthly | None (never)
    Column("disabled", Boolean, nullable=False, default=False, server_default=false()),
    Column("usage", JSON),  # the provider's last figures for it (nano-dollars)
    Column("problem", Text),  # why the last change or read failed, for people
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("synced_at", UTCDateTime),
    UniqueConstraint("provider", "app_id", name="uq_provider_subkeys_provider_app"),
)

# x402 payments the wallet signed from the user's Solana wallet (migration 0007).
payments = Table(
    "payments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(16), nullable=False),  # "request" | "topup"
    Column("request_id", String(64), nullable=False),  # the request, or "topup:<id>"
    Column("app_id", Integer, ForeignKey("apps.id", ondelete="SET NULL")),
    Column("provider", String(48), nullable=False),
    Column("payee", String(64), nullable=False),  # payTo
    Column("network", String(64), nullable=False),  # CAIP-2
    Column("asset", String(64), nullable=False),  # the token's mint
    Column("amount_atomic", BigInteger, nullable=False),
    Column("amount_nano", BigInteger, nullable=False),
    Column("payer", String(64), nullable=False),
    # the payer's own signature in the transaction (deterministic): finds it on chain
    Column("payer_signature", String(100), nullable=False, unique=True),
    Column("tx_signature", String(100), unique=True),  # once settled: billed once per signature
    Column("blockhash", String(64), nullable=False),
    Column("resource", String(500)),
    Column("state", String(16), nullable=False),  # signed | held | settled | failed | unconfirmed
    Column("billed", Boolean, nullable=False, default=False, server_default=false()),
    # paid, and then the answer failed: billed, and shown as such
    Column("flagged", Boolean, nullable=False, default=False, server_default=false()),
    Column("note", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("settled_at", UTCDateTime),
    CheckConstraint("amount_atomic > 0", name="amount_positive"),
    CheckConstraint(
        "state IN ('signed', 'held', 'settled', 'failed', 'unconfirmed')", name="state_known"
    ),
    Index("ix_payments_state", "state"),
    Index("ix_payments_created", "created_at"),
    Index("ix_payments_request", "request_id"),
)

settings = Table(
    "settings",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", JSON, nullable=False),
)

# Remembered consent decisions (allow and deny), for apps that ask by name and for local
# programs that call without a key (subject: the executable's path).
consent_rules = Table(
    "consent_rules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("subject_kind", String(16), nullable=False),  # "exe" | "app"
    Column("subject", String(500), nullable=False),
    Column("decision", String(8), nullable=False),  # "allow" | "deny"
    Column("app_id", Integer, ForeignKey("apps.id", ondelete="SET NULL")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
    Column("note", Text),
    Index("ix_consent_rules_subject", "subject_kind", "subject"),
)
