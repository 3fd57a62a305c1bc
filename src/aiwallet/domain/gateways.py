"""AI gateways in front of many vendors: Cloudflare AI Gateway's URLs and ids, and how a
gateway's ``vendor/model`` id is priced from the catalog.

Pure: no I/O. Cloudflare's base URL is built from the user's account and gateway ids
(``{root}/{account_id}/{gateway_id}/{endpoint}``); the ids are checked before anything is
stored. A ``vendor/model`` id (Vercel AI Gateway, Cloudflare's ``/compat`` endpoint) is priced
as its vendor sells the model: :func:`price_candidates` lists the catalog rows to try, in
order (the vendor's own row as the catalog spells it, then OpenRouter's row of the same
model).
"""

from __future__ import annotations

import re

from aiwallet.domain.errors import InvalidInput

CLOUDFLARE_ROOT = "https://gateway.ai.cloudflare.com/v1"
# the path below ``{account}/{gateway}`` each Cloudflare kind speaks to
CLOUDFLARE_ENDPOINTS = {
    "cloudflare": "compat",  # OpenAI-compatible, any vendor: ``vendor/model`` ids
    "cloudflare-openai": "openai",  # OpenAI's own API, passed through
    "cloudflare-anthropic": "anthropic",  # Anthropic's own API (``/v1/messages`` below it)
}
GATEWAY_HEADER = "cf-aig-authorization"

_ACCOUNT_RE = re.compile(r"[0-9a-f]{32}")
_GATEWAY_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_account_id(value: str) -> str:
    """A Cloudflare account id: 32 hexadecimal digits (lower-cased)."""
    text = value.strip().lower()
    if not _ACCOUNT_RE.fullmatch(text):
        raise InvalidInput(
            f"{value!r} is not a Cloudflare account id; it is 32 hexadecimal digits, shown on "
            "the Cloudflare dashboard (AI > AI Gateway, or the account's overview page)",
            param="account_id",
        )
    return text


def check_gateway_id(value: str) -> str:
    """A Cloudflare AI Gateway id: a slug of letters, digits, '-' and '_' (at most 64)."""
    if not _GATEWAY_RE.fullmatch(value):
        raise InvalidInput(
            f"{value!r} is not an AI Gateway id; use the gateway's name as Cloudflare shows it "
            "(letters, digits, '-' and '_', at most 64 characters)",
            param="gateway_id",
        )
    return value


def cloudflare_base_url(
    kind_id: str, account_id: str, gateway_id: str, root: str | None = None
) -> str:
    """The base URL of a Cloudflare kind for this account and gateway (ids checked)."""
    try:
        endpoint = CLOUDFLARE_ENDPOINTS[kind_id]
    except KeyError:
        raise InvalidInput(f"{kind_id!r} is not a Cloudflare AI Gateway kind") from None
    acct, gw = check_account_id(account_id), check_gateway_id(gateway_id)
    base = (root or CLOUDFLARE_ROOT).rstrip("/")
    return f"{base}/{acct}/{gw}/{endpoint}"


def gateway_secret_name(provider: str) -> str:
    """The vault entry of a provider's gateway token (``cf-aig-authorization``)."""
    return f"provider:{provider}:gateway"


# -- pricing vendor/model ids ------------------------------------------------------------------

# A gateway's vendor prefix → the catalog's (models.dev) provider id; a prefix not listed is
# taken as the catalog's id itself (``openai``, ``anthropic``, ``mistral``, ``deepseek``...).
VENDOR_PROVIDERS = {
    "google-ai-studio": "google",  # Cloudflare
    "grok": "xai",  # Cloudflare
    "workers-ai": "cloudflare-workers-ai",  # Cloudflare's own hosting (models.dev's id)
}
# The catalog's provider id → OpenRouter's vendor prefix, where they differ.
OPENROUTER_VENDORS = {
    "xai": "x-ai",
    "mistral": "mistralai",
    "meta": "meta-llama",
    "zai": "z-ai",
    "alibaba": "qwen",
}
# Vendors whose models no OpenRouter row prices the same (hosted and billed by the gateway).
_NO_OPENROUTER = frozenset({"cloudflare-workers-ai"})
_DOTTED_VERSION = re.compile(r"(?<=\d)\.(?=\d)")
# Anthropic's aliases: ``claude-sonnet-4`` is ``claude-sonnet-4-0``; an older family's
# ``claude-3-5-haiku`` is ``claude-3-5-haiku-latest``
_NEW_FAMILY_MAJOR = re.compile(r"claude-[a-z]+-\d+")
_OLD_FAMILY = re.compile(r"claude-\d+(-\d+)?-[a-z]+")


def split_vendor_model(model: str) -> tuple[str, str] | None:
    """``("anthropic", "claude-sonnet-4.5")`` for ``anthropic/claude-sonnet-4.5``; None when
    the id names no vendor (the name after the first '/' may hold more slashes:
    ``workers-ai/@cf/meta/llama-3.1-8b-instruct``)."""
    vendor, sep, name = model.partition("/")
    if not sep or not vendor or not name:
        return None
    return vendor, name


def vendor_provider(vendor: str) -> str:
    """The catalog provider id of a gateway's vendor prefix."""
    return VENDOR_PROVIDERS.get(vendor, vendor)


def catalog_spellings(provider: str, name: str) -> tuple[str, ...]:
    """How the catalog may spell a model a gateway names ``name``, best first.

    Anthropic's ids use dashes where the gateways use dots (``claude-sonnet-4.5`` is
    ``claude-sonnet-4-5``); a bare major version is Anthropic's ``-0`` alias
    (``claude-sonnet-4`` is ``claude-sonnet-4-0``) and an older family's ``-latest`` alias
    (``claude-3.5-haiku`` is ``claude-3-5-haiku-latest``). Other vendors spell ids as the
    gateways do."""
    if provider != "anthropic":
        return (name,)
    dashed = _DOTTED_VERSION.sub("-", name)
    out = [name, dashed] if dashed != name else [name]
    if _NEW_FAMILY_MAJOR.fullmatch(dashed):
        out.append(f"{dashed}-0")
    elif _OLD_FAMILY.fullmatch(dashed):
        out.append(f"{dashed}-latest")
    return tuple(dict.fromkeys(out))


def price_candidates(model: str) -> tuple[tuple[str, str], ...]:
    """The catalog rows (provider id, model id) that price a gateway's ``vendor/model`` id,
    in the order to try them: the vendor's own rows, then OpenRouter's row of the same
    ``vendor/model``. Empty when ``model`` names no vendor."""
    split = split_vendor_model(model)
    if split is None:
        return ()
    vendor, name = split
    provider = vendor_provider(vendor)
    rows = [(provider, spelled) for spelled in catalog_spellings(provider, name)]
    if provider not in _NO_OPENROUTER and provider != "openrouter":
        prefix = OPENROUTER_VENDORS.get(provider, provider)
        rows.append(("openrouter", f"{prefix}/{name}"))
    return tuple(rows)
