"""Kinds of upstream provider the wallet can hold a key for, and how each is spoken to.

Pure data: default base URLs, the wire format (OpenAI or Anthropic), how the key is sent,
and which models.dev provider id prices its models.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime

from aiwallet.domain.errors import InvalidInput


class WireFormat(enum.StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"


class AuthStyle(enum.StrEnum):
    BEARER = "bearer"  # Authorization: Bearer <key>
    X_API_KEY = "x-api-key"  # x-api-key: <key> (Anthropic)
    NONE = "none"  # local servers such as Ollama


@dataclass(frozen=True, slots=True)
class ProviderKind:
    """What a user picks when adding a provider."""

    id: str
    label: str
    wire: WireFormat
    auth: AuthStyle
    default_base_url: str | None
    catalog_provider: str | None  # models.dev provider id that prices its models
    needs_key: bool = True
    x402: bool = False  # paid per request (or ahead, prepaid) in USDC by x402
    # a server on this machine (Ollama, LM Studio, llama.cpp): metered but free, and outside
    # every budget, unless the user prices it (provider options ``price``, ``budgeted``)
    local: bool = False
    # model ids are ``vendor/model`` (a gateway in front of many vendors): priced as the
    # vendor sells the model (Vercel AI Gateway, Cloudflare AI Gateway's /compat endpoint)
    vendor_models: bool = False
    # the provider reports each request's cost (OpenRouter ``usage.cost``): the ledger bills it
    reports_cost: bool = False
    # how a balance is read, where the provider publishes one: "openrouter" | "vercel" |
    # "deepseek" (upstreams/balance.py); None: not published
    balance_api: str | None = None
    # a gateway whose base URL is built from the user's account (``cloudflare``: account and
    # gateway ids in the provider's options, an optional gateway token in the vault)
    gateway: str | None = None

    @property
    def needs_base_url(self) -> bool:
        return self.default_base_url is None


KINDS: dict[str, ProviderKind] = {
    k.id: k
    for k in (
        ProviderKind(
            "openai", "OpenAI", WireFormat.OPENAI, AuthStyle.BEARER,
            "https://api.openai.com/v1", "openai",
        ),
        ProviderKind(
            "anthropic", "Anthropic", WireFormat.ANTHROPIC, AuthStyle.X_API_KEY,
            "https://api.anthropic.com", "anthropic",
        ),
        ProviderKind(
            "openrouter", "OpenRouter", WireFormat.OPENAI, AuthStyle.BEARER,
            "https://openrouter.ai/api/v1", "openrouter", reports_cost=True,
            balance_api="openrouter",
        ),
        ProviderKind(
            "groq", "Groq", WireFormat.OPENAI, AuthStyle.BEARER,
            "https://api.groq.com/openai/v1", "groq",
        ),
        ProviderKind(
            "google", "Google Gemini (OpenAI-compatible)", WireFormat.OPENAI, AuthStyle.BEARER,
            "https://generativelanguage.googleapis.com/v1beta/openai", "google",
        ),
        ProviderKind(
            "mistral", "Mistral", WireFormat.OPENAI, AuthStyle.BEARER,
            "https://api.mistral.ai/v1", "mistral",
        ),
        ProviderKind(
            "deepseek", "DeepSeek", WireFormat.OPENAI, AuthStyle.BEARER,
            "https://api.deepseek.com/v1", "deepseek", balance_api="deepseek",
        ),
        ProviderKind(
            "xai", "xAI", WireFormat.OPENAI, AuthStyle.BEARER,
            "https://api.x.ai/v1", "xai",
        ),
        ProviderKind(
            "ollama", "Ollama (local)", WireFormat.OPENAI, AuthStyle.NONE,
            "http://localhost:11434/v1", None, needs_key=False, local=True,
        ),
        ProviderKind(
            "lmstudio", "LM Studio (local)", WireFormat.OPENAI, AuthStyle.NONE,
            "http://localhost:1234/v1", None, needs_key=False, local=True,
        ),
        ProviderKind(
            "llamacpp", "llama.cpp server (local)", WireFormat.OPENAI, AuthStyle.NONE,
            "http://localhost:8080/v1", None, needs_key=False, local=True,
        ),
        # gateways in front of many vendors (../shared/notes/providers.md)
        ProviderKind(
            "vercel", "Vercel AI Gateway", WireFormat.OPENAI, AuthStyle.BEARER,
            "https://ai-gateway.vercel.sh/v1", None, vendor_models=True, balance_api="vercel",
        ),
        ProviderKind(
            "vercel-anthropic", "Vercel AI Gateway, Anthropic format", WireFormat.ANTHROPIC,
            AuthStyle.BEARER, "https://ai-gateway.vercel.sh", None, vendor_models=True,
            balance_api="vercel",
        ),
        ProviderKind(
            "cloudflare", "Cloudflare AI Gateway (OpenAI-compatible)", WireFormat.OPENAI,
            AuthStyle.BEARER, None, None, vendor_models=True, gateway="cloudflare",
        ),
        ProviderKind(
            "cloudflare-openai", "Cloudflare AI Gateway in front of OpenAI", WireFormat.OPENAI,
            AuthStyle.BEARER, None, "openai", gateway="cloudflare",
        ),
        ProviderKind(
            "cloudflare-anthropic", "Cloudflare AI Gateway in front of Anthropic",
            WireFormat.ANTHROPIC, AuthStyle.X_API_KEY, None, "anthropic", gateway="cloudflare",
        ),
        ProviderKind(
            "openai-compatible", "Any OpenAI-compatible server", WireFormat.OPENAI,
            AuthStyle.BEARER, None, None,
        ),
        ProviderKind(
            "anthropic-compatible", "Any Anthropic-compatible server", WireFormat.ANTHROPIC,
            AuthStyle.X_API_KEY, None, None,
        ),
        # x402 routers: answer 402 with payment requirements and serve once paid from the
        # user's Solana wallet (a prepaid one issues a key for its credit at the first top-up)
        ProviderKind(
            "x402", "x402 router, OpenAI format (pay per request in USDC)", WireFormat.OPENAI,
            AuthStyle.BEARER, None, None, needs_key=False, x402=True,
        ),
        ProviderKind(
            "x402-anthropic", "x402 router, Anthropic format (pay per request in USDC)",
            WireFormat.ANTHROPIC, AuthStyle.BEARER, None, None, needs_key=False, x402=True,
        ),
    )
}  # fmt: skip

ANTHROPIC_VERSION = "2023-06-01"

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,47}$")


def provider_kind(kind_id: str) -> ProviderKind:
    """The kind named ``kind_id``, or a clear error listing the known ones."""
    try:
        return KINDS[kind_id]
    except KeyError:
        known = ", ".join(KINDS)
        raise InvalidInput(f"unknown provider kind {kind_id!r}; choose one of: {known}") from None


def check_provider_name(name: str) -> str:
    """Provider names are short lower-case ids (``openai``, ``work-anthropic``)."""
    if not _NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"{name!r} is not a usable provider name; use lower-case letters, digits, '-', '_' "
            "or '.', at most 48 characters"
        )
    return name


def check_base_url(url: str) -> str:
    """A base URL must be http(s) with a host; trailing slashes are dropped."""
    if not re.match(r"^https?://[^/\s]+(/\S*)?$", url):
        raise InvalidInput(f"{url!r} is not a base URL; it should look like https://host/v1")
    return url.rstrip("/")


# Kinds whose API tells an account's or a key's balance; the others publish none.
KINDS_WITH_BALANCE = frozenset(k.id for k in KINDS.values() if k.balance_api)


@dataclass(frozen=True, slots=True)
class Balance:
    """What a provider publishes of what is left: a key's limit (OpenRouter), an account's
    credits (OpenRouter with a management key, Vercel), a prepaid balance (DeepSeek)."""

    provider: str
    remaining_nano: int | None  # None: the key has no limit / not known
    limit_nano: int | None
    used_nano: int | None
    problem: str | None = None  # why it could not be read (never the response body)
    credits_nano: int | None = None  # the account's credits left, where published apart

    @property
    def left_nano(self) -> int | None:
        """The least of what is left that is known (the key's limit, the account's credits)."""
        known = [v for v in (self.remaining_nano, self.credits_nano) if v is not None]
        return min(known) if known else None

    def to_json(self) -> dict[str, int | str | None]:
        return {
            "provider": self.provider,
            "remaining_nano": self.remaining_nano,
            "limit_nano": self.limit_nano,
            "used_nano": self.used_nano,
            "credits_nano": self.credits_nano,
            "left_nano": self.left_nano,
            "problem": self.problem,
        }


def key_age_days(key_set_at: datetime | None, now: datetime) -> int | None:
    """Whole days since a key was stored (None: no key)."""
    if key_set_at is None:
        return None
    return max(0, (now - key_set_at).days)


def rotation_due(age_days: int | None, after_days: int) -> bool:
    """A key old enough to be rotated (``after_days`` 0: never remind)."""
    return after_days > 0 and age_days is not None and age_days >= after_days
