"""Which provider serves a model, at what price, and whether an app may ask for it."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from aiwallet.domain.catalog import PROVIDER_PREFERENCE, Catalog, PriceRow
from aiwallet.domain.gateways import gateway_ids, price_candidates
from aiwallet.domain.local_servers import local_price_row
from aiwallet.domain.providers import ProviderKind, WireFormat, provider_kind
from aiwallet.engine.errors import ProxyError
from aiwallet.store.providers import ProviderRecord


@dataclass(frozen=True, slots=True)
class Route:
    provider: ProviderRecord
    kind: ProviderKind
    upstream_model: str  # the model name sent upstream
    row: PriceRow
    via: str | None = None  # the user's route (fallback chain) it came from
    # the client's wire format when the provider speaks the other one (engine/translate.py)
    translate_from: WireFormat | None = None

    @property
    def qualified(self) -> str:
        return f"{self.provider.name}/{self.upstream_model}"


SERVING_CACHE = 4096  # models remembered per router (it is rebuilt at every reload)


def _rank(kind: ProviderKind) -> int:
    if kind.catalog_provider in PROVIDER_PREFERENCE:
        return PROVIDER_PREFERENCE.index(kind.catalog_provider)
    return len(PROVIDER_PREFERENCE)


class Router:
    def __init__(
        self,
        providers: Iterable[ProviderRecord],
        catalog: Catalog,
        openrouter: Mapping[str, PriceRow] | None = None,
        routes: Mapping[str, Sequence[str]] | None = None,
        healthy: Callable[[str], bool] | None = None,
    ) -> None:
        self.catalog = catalog
        # the user's routes: name → provider/model targets, tried in order on failure
        self.routes: Mapping[str, Sequence[str]] = routes or {}
        # whether a provider is taking requests now (its circuit breaker); all are, unless told
        self.healthy: Callable[[str], bool] = healthy or (lambda _name: True)
        # OpenRouter's own price list (GET /api/v1/models, cached): it prices OpenRouter's
        # models before the catalog's snapshot of them
        self.openrouter: Mapping[str, PriceRow] = openrouter or {}
        self.providers = sorted(
            ((p, provider_kind(p.kind)) for p in providers),
            key=lambda pk: (_rank(pk[1]), pk[0].name),
        )
        self.by_name = {p.name: (p, k) for p, k in self.providers}
        self._serving: dict[tuple[str, WireFormat], list[tuple[tuple[int, int, str], Route]]] = {}

    def _price(
        self, kind: ProviderKind, model: str, provider: ProviderRecord | None = None
    ) -> PriceRow | None:
        if kind.catalog_provider == "openrouter" and (row := self.openrouter.get(model)):
            return row
        if kind.local:  # any model, at zero or the user's own price (domain/local_servers.py)
            if provider is None:
                return None
            return local_price_row(provider.name, model, provider.options)
        if kind.vendor_models:  # ``vendor/model``: priced as the vendor sells it
            return self.vendor_price(model)
        if kind.catalog_provider:
            return self.catalog.get(kind.catalog_provider, model)
        # A custom OpenAI/Anthropic-compatible server: priced as the model's own vendor sells it.
        found = self.catalog.candidates(model)
        if found:
            return found[0]
        if kind.x402 and provider is not None and not provider.prepaid:
            return payment_priced(provider.name, model)  # the 402 names the price
        return None

    def vendor_price(self, model: str) -> PriceRow | None:
        """A gateway's ``vendor/model`` id priced by the vendor's own catalog row (as the
        catalog spells the model), else OpenRouter's row of the same model; None: unpriced."""
        for catalog_provider, catalog_model in price_candidates(model):
            row = self.catalog.get(catalog_provider, catalog_model)
            if catalog_provider == "openrouter":  # OpenRouter's own list first
                row = self.openrouter.get(catalog_model) or row
            if row is not None:
                return row
        return None

    def resolve(self, model: object, wire: WireFormat, *, translate: bool = False) -> Route:
        """The route of ``model`` for a client of ``wire``; with ``translate``, a provider of
        the other format serves it when none of ``wire`` does (the route says so)."""
        if not isinstance(model, str) or not model:
            raise ProxyError("invalid_request", "the request names no model", param="model")
        prefix, sep, rest = model.partition("/")
        if sep and prefix in self.by_name:
            provider, kind = self.by_name[prefix]
            if kind.wire is not wire and (found := self._first(model, wire)) is not None:
                return found  # ``anthropic/...`` at a gateway, beside a provider "anthropic"
            if kind.wire is not wire and not translate:
                raise ProxyError(
                    "invalid_request",
                    f"provider {prefix!r} speaks the {kind.wire.value} format; call it through "
                    f"the {kind.wire.value} endpoints",
                    param="model",
                )
            row = self._price(kind, rest, provider)
            if row is None:
                raise _unpriced(model, kind)
            other = wire if kind.wire is not wire else None
            return Route(provider, kind, rest, row, translate_from=other)
        found = self._first(model, wire)
        if found is not None:
            return found
        if translate and (found := self._first(model, _other(wire))) is not None:
            return replace(found, translate_from=wire)
        known = self.catalog.candidates(model)
        if known:
            vendors = ", ".join(sorted({r.provider for r in known}))
            raise ProxyError(
                "no_provider",
                f"no configured provider serves {model!r} in this format (sold by: {vendors}); "
                f"the wallet's owner can add one with 'aiwallet providers add'",
            )
        raise ProxyError(
            "unknown_model",
            f"the model {model!r} is not in the wallet's pricing catalog; check its name, or "
            "ask the wallet's owner to refresh the catalog ('aiwallet catalog update')",
            param="model",
        )

    def serving(self, model: str, wire: WireFormat) -> list[Route]:
        """Every configured provider that serves ``model`` in ``wire``, the one to try first
        first: healthy before not, then the cheaper (input + output price per 1M tokens),
        then the model's own vendor (preference order). A bare catalog name (``gpt-4o-mini``)
        is also looked for at OpenRouter and the gateways under their ids for it
        (``openai/gpt-4o-mini``, ``anthropic/claude-sonnet-4.5``), each priced by its own row.
        Servers on this machine are not among them (see :meth:`_first`).

        Who serves a model is found once per router (it is rebuilt at every reload) and
        kept; only the health order is decided per call (a breaker opens at any time)."""
        known = self._serving.get((model, wire))
        if known is None:
            known = self._find_serving(model, wire)
            if len(self._serving) >= SERVING_CACHE:  # bounded: names are the callers' text
                self._serving.clear()
            self._serving[(model, wire)] = known
        if len(known) < 2:
            return [route for _, route in known]
        ranked = sorted(known, key=lambda kr: (not self.healthy(kr[1].provider.name), kr[0]))
        return [route for _, route in ranked]

    def _find_serving(
        self, model: str, wire: WireFormat
    ) -> list[tuple[tuple[int, int, str], Route]]:
        found: dict[str, tuple[tuple[int, int, str], Route]] = {}

        def add(provider: ProviderRecord, kind: ProviderKind, name: str, row: PriceRow) -> None:
            route = Route(provider, kind, name, row)
            key = (row.input + row.output, _rank(kind), provider.name)
            if route.qualified not in found:
                found[route.qualified] = (key, route)

        aliases = [
            gid
            for row in (self.catalog.candidates(model) if "/" not in model else [])
            for gid in gateway_ids(row.provider, row.model)
        ]
        for provider, kind in self.providers:
            if kind.wire is not wire or kind.local:
                continue
            if (row := self._price(kind, model)) is not None:
                add(provider, kind, model, row)
            elif kind.vendor_models or kind.catalog_provider == "openrouter":
                for gid in aliases:
                    if (row := self._price(kind, gid)) is not None:
                        add(provider, kind, gid, row)
                        break
        return sorted(found.values(), key=lambda kr: kr[0])

    def chain(self, model: object, wire: WireFormat, *, translate: bool = False) -> list[Route]:
        """The routes to try for ``model``, in order: a user's route's targets (each that
        resolves), a model pinned to a provider (``openai/gpt-4.1``) alone, else every
        provider that serves it (:meth:`serving`). With ``translate``, a target of the other
        wire format is served through translation (:meth:`resolve`)."""
        if isinstance(model, str) and model in self.routes:
            out: list[Route] = []
            problems: list[str] = []
            for target in self.routes[model]:
                try:
                    r = self.resolve(target, wire, translate=translate)
                except ProxyError as exc:
                    problems.append(f"{target}: {exc.message}")
                    continue
                out.append(replace(r, via=model))
            if not out:
                raise ProxyError(
                    "no_provider",
                    f"no target of the route {model!r} can be served in this format ("
                    + "; ".join(problems)[:400]
                    + ")",
                )
            return out
        first = self.resolve(model, wire, translate=translate)
        prefix = model.partition("/")[0] if isinstance(model, str) else ""
        if prefix in self.by_name or first.kind.local or first.translate_from is not None:
            return [first]
        rest = [r for r in self.serving(str(model), wire) if r.qualified != first.qualified]
        return [first, *rest]

    def _first(self, model: str, wire: WireFormat) -> Route | None:
        """The provider to try first for ``model`` in ``wire`` (:meth:`serving`). A server
        on this machine serves any name, so it is asked last, and not for a model the
        catalog knows a vendor of (``gpt-4o`` is not Ollama's): ``ollama/gpt-4o`` asks it."""
        serving = self.serving(model, wire)
        if serving:
            return serving[0]
        if self.catalog.candidates(model):
            return None
        for provider, kind in self.providers:
            if kind.wire is wire and kind.local:
                return Route(provider, kind, model, local_price_row(
                    provider.name, model, provider.options
                ))  # fmt: skip
        return None

    def models_for(self, wire: WireFormat, scopes: Sequence[str]) -> list[Route]:
        """Every model this wallet can serve in ``wire`` that the scopes allow."""
        out: dict[str, Route] = {}
        for provider, kind in self.providers:
            if kind.wire is not wire or not kind.catalog_provider:
                continue
            rows = self.catalog.models_of(kind.catalog_provider)
            if kind.catalog_provider == "openrouter" and self.openrouter:
                listed = {r.model for r in rows}
                rows = [self.openrouter.get(r.model, r) for r in rows] + [
                    r for m, r in sorted(self.openrouter.items()) if m not in listed
                ]
            for row in rows:
                route = Route(provider, kind, row.model, row)
                if row.model not in out and scope_allows(scopes, route):
                    out[row.model] = route
        return list(out.values())


def _other(wire: WireFormat) -> WireFormat:
    return WireFormat.ANTHROPIC if wire is WireFormat.OPENAI else WireFormat.OPENAI


def payment_priced(provider: str, model: str) -> PriceRow:
    """The price row of a model only an x402 router prices, per request: nothing is known
    before its 402 names the amount, which is then reserved before anything is signed."""
    return PriceRow(
        provider=provider, model=model, name=model, input=0, output=0,
        ref=f"x402:{provider}/{model}",
    )  # fmt: skip


def _unpriced(model: str, kind: ProviderKind) -> ProxyError:
    refresh = (
        "refresh OpenRouter's price list ('aiwallet catalog openrouter')"
        if kind.catalog_provider == "openrouter"
        else "refresh the catalog ('aiwallet catalog update')"
    )
    return ProxyError(
        "unknown_model",
        f"the model {model!r} has no price in the wallet's catalog, so it cannot be metered; "
        f"{refresh}",
        param="model",
    )


def scope_allows(scopes: Sequence[str], route: Route) -> bool:
    """Grant scopes are glob patterns over ``model``, ``provider/model`` or ``vendor/model``."""
    names = {route.upstream_model, route.qualified, f"{route.row.provider}/{route.row.model}"}
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in scopes for name in names)
