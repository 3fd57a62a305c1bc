"""A request that names a stored prompt template (``"aiwallet_template": {"name", "version",
"variables"}``) gets the template's messages rendered in front of its own, before it is
priced, bounded and forwarded; the field itself never goes upstream. Templates hold prompts,
never completions (domain/templates.py)."""

from __future__ import annotations

from typing import Any

from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.templates import render
from aiwallet.engine.errors import ProxyError
from aiwallet.store.routes import TemplateRecord

FIELD = "aiwallet_template"


def template_ref(body: dict[str, Any]) -> tuple[str, int | None, dict[str, Any]] | None:
    """The template a body names (name, version or None for the latest, variables)."""
    ref = body.get(FIELD)
    if ref is None:
        return None
    if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
        raise ProxyError(
            "invalid_request",
            f"'{FIELD}' is an object with the template's 'name' (and 'version', 'variables')",
            param=FIELD,
        )
    version = ref.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise ProxyError("invalid_request", "a template's version is a whole number", param=FIELD)
    variables = ref.get("variables", {})
    if not isinstance(variables, dict):
        raise ProxyError(
            "invalid_request", "a template's variables are an object of name → text", param=FIELD
        )
    return ref["name"], version, variables


def apply_template(
    body: dict[str, Any], path: str, template: TemplateRecord, variables: dict[str, Any]
) -> None:
    """Render ``template`` into ``body`` (in place) for the API at ``path``."""
    try:
        messages = render(list(template.messages), variables)
    except InvalidInput as exc:
        raise ProxyError(
            "invalid_request", f"template {template.name!r}: {exc}", param=FIELD
        ) from None
    body.pop(FIELD, None)
    if path == "/v1/chat/completions":
        own = body.get("messages", [])
        if not isinstance(own, list):
            raise ProxyError("invalid_request", "'messages' must be a list", param="messages")
        body["messages"] = [*messages, *own]
    elif path == "/v1/messages":
        system = "\n\n".join(m["content"] for m in messages if m["role"] in ("system", "developer"))
        turns = [m for m in messages if m["role"] in ("user", "assistant")]
        if system:
            own_system = body.get("system")
            if own_system is not None and not isinstance(own_system, str):
                raise ProxyError(
                    "invalid_request",
                    "a template's system text joins a 'system' given as text only",
                    param="system",
                )
            body["system"] = system + (f"\n\n{own_system}" if own_system else "")
        own = body.get("messages", [])
        if not isinstance(own, list):
            raise ProxyError("invalid_request", "'messages' must be a list", param="messages")
        body["messages"] = [*turns, *own]
    elif path == "/v1/responses":
        own = body.get("input", [])
        if isinstance(own, str):
            own = [{"role": "user", "content": own}]
        if not isinstance(own, list):
            raise ProxyError("invalid_request", "'input' must be text or a list", param="input")
        body["input"] = [*messages, *own]
    else:
        raise ProxyError("invalid_request", f"prompt templates do not apply to {path}", param=FIELD)
