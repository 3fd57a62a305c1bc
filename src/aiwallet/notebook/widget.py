"""The budget widget (anywidget) and the feed that keeps it current.

The widget's front end (``static/widget.js``) only draws: every figure arrives as exact text
computed here from the wallet's answers. The feed is one daemon thread per session that
long-polls ``GET /wallet/v1/me/requests`` (it answers as soon as one of this app's requests
is logged or the wallet's settings change) and then reads ``/me`` with the spend series, so
the widget follows the cells as they run without the kernel waiting for it. Where widgets
cannot render (a plain console, ``nbconvert`` to HTML) the text and HTML fallbacks show.
"""

from __future__ import annotations

import html
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import asdict
from importlib import resources
from typing import Any

from aiwallet.notebook.status import NO_WALLET, REVOKED, BudgetView, budget_view
from aiwallet.notebook.wallet import WalletClient, WalletRefused, WalletUnavailable

SERIES_BUCKETS = 48
POLL_S = 25.0  # the long-poll's hold: an idle wallet is asked about twice a minute

try:  # the widget needs the ``notebook`` extra; the text fallback does not
    import anywidget
    import traitlets

    HAVE_WIDGETS = True
except ImportError:  # pragma: no cover - exercised only without the extra
    HAVE_WIDGETS = False


def _static(name: str) -> str:
    return resources.files("aiwallet.notebook").joinpath("static", name).read_text()


def view_state(view: BudgetView) -> dict[str, Any]:
    """The widget's synced traits for ``view``."""
    data = asdict(view)
    data["window_label"] = list(view.window_label)
    for name in ("spent_nano", "limit_nano", "left_nano", "burn_nano_per_hour"):
        data.pop(name)  # integers past 2**53 do not survive JavaScript; the text carries them
    return data


def view_html(view: BudgetView) -> str:
    """A static rendering for where the widget cannot run (nbconvert, saved notebooks)."""
    text = html.escape(view.text())
    return (
        '<pre class="aiwallet-budget-text" style="font: 12px var(--jp-code-font-family, '
        f'monospace); margin: 0">{text}</pre>'
    )


if HAVE_WIDGETS:

    class BudgetWidget(anywidget.AnyWidget):
        """Spent / budget / left, reset, burn rate, projected run-out and the spend over the
        window; paused and revoked states."""

        _esm = _static("widget.js")
        _css = _static("widget.css")

        state = traitlets.Unicode("connecting").tag(sync=True)
        app = traitlets.Unicode("").tag(sync=True)
        message = traitlets.Unicode("").tag(sync=True)
        models = traitlets.Unicode("").tag(sync=True)
        spent = traitlets.Unicode("").tag(sync=True)
        budget = traitlets.Unicode("").tag(sync=True)
        left = traitlets.Unicode("").tag(sync=True)
        resets = traitlets.Unicode("").tag(sync=True)
        burn = traitlets.Unicode("").tag(sync=True)
        runout = traitlets.Unicode("").tag(sync=True)
        used_fraction = traitlets.Float(0.0).tag(sync=True)
        curve = traitlets.List(traitlets.List(traitlets.Float())).tag(sync=True)
        now_fraction = traitlets.Float(0.0).tag(sync=True)
        runout_fraction = traitlets.Float(None, allow_none=True).tag(sync=True)
        window_label = traitlets.List(traitlets.Unicode(), default_value=["", ""]).tag(sync=True)
        updated = traitlets.Unicode("").tag(sync=True)

        def __init__(self, view: BudgetView | None = None, **kw: Any) -> None:
            super().__init__(**kw)
            self.view = view or BudgetView("connecting", message="asking the wallet…")
            self.apply(self.view)

        def apply(self, view: BudgetView) -> None:
            """Show ``view`` (one comm message for all the traits that changed)."""
            self.view = view
            with self.hold_sync():
                for name, value in view_state(view).items():
                    setattr(self, name, value)
                self.updated = time.strftime("%H:%M:%S")

        def _repr_mimebundle_(self, **kw: Any) -> Any:
            bundle = super()._repr_mimebundle_(**kw)
            data = bundle[0] if isinstance(bundle, tuple) else bundle
            if isinstance(data, dict):
                data["text/plain"] = self.view.text()
                data["text/html"] = view_html(self.view)
            return bundle


class TextBudget:
    """The fallback: the same figures as text (a console, or no anywidget installed)."""

    def __init__(self, view: BudgetView | None = None) -> None:
        self.view = view or BudgetView("connecting", message="asking the wallet…")

    def apply(self, view: BudgetView) -> None:
        self.view = view

    def _repr_mimebundle_(self, **_: Any) -> dict[str, str]:
        return {"text/plain": self.view.text(), "text/html": view_html(self.view)}

    def __repr__(self) -> str:
        return self.view.text()


def new_budget_view(view: BudgetView | None = None) -> Any:
    """A widget when widgets are available, else the text fallback."""
    if HAVE_WIDGETS:
        return BudgetWidget(view)
    return TextBudget(view)


def read_view(client: WalletClient) -> BudgetView:
    """The budget as the wallet tells it now (a refusal or a stopped wallet included)."""
    try:
        return budget_view(client.me(series=SERIES_BUCKETS))
    except WalletUnavailable as exc:
        return BudgetView(NO_WALLET, message=str(exc))
    except WalletRefused as err:
        if err.code in ("consent_required", "invalid_app_key"):
            return BudgetView(REVOKED, message=revoked_message(err))
        return BudgetView(NO_WALLET, message=f"the wallet refused: {err}")


def revoked_message(err: WalletRefused) -> str:
    if err.code == "invalid_app_key":
        return "this wallet no longer knows the notebook's key; run aw.connect(...) to ask again"
    return f"{err}. Run aw.connect(...) to ask again."


class Feed:
    """Keeps the session's widgets current: one daemon thread, long-polling the wallet."""

    def __init__(
        self, client_factory: Callable[[], WalletClient | None], *, poll_s: float = POLL_S
    ) -> None:
        self._client_factory = client_factory
        self.poll_s = poll_s  # the longest a stopped feed's thread lingers
        self._targets: weakref.WeakSet[Any] = weakref.WeakSet()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.view: BudgetView | None = None
        self.refreshes = 0

    def add(self, target: Any) -> None:
        self._targets.add(target)
        if self.view is not None:
            target.apply(self.view)
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="aiwallet-feed", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def refresh(self, client: WalletClient | None = None) -> BudgetView:
        """Read the wallet once and show it."""
        own = client is None
        client = client or self._client_factory()
        if client is None:
            view = BudgetView(REVOKED, message="not connected: run aw.connect(...)")
        else:
            try:
                view = read_view(client)
            finally:
                if own:
                    client.close()
        self.view = view
        self.refreshes += 1
        for target in list(self._targets):
            target.apply(view)
        return view

    def _run(self) -> None:
        client = self._client_factory()
        backoff = 1.0
        cursor: str | None = str(time.time_ns() // 1000)  # what is logged from now on
        try:
            while not self._stop.is_set() and client is not None:
                view = self.refresh(client)
                if view.state == REVOKED:
                    return  # nothing will change for this key: stop asking
                if view.state == NO_WALLET:
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                backoff = 1.0
                try:
                    page = client.requests_page(cursor, limit=100, wait_s=self.poll_s)
                    cursor = page["next"] or cursor
                    while page["more"] and not self._stop.is_set():
                        page = client.requests_page(cursor, limit=100)
                        cursor = page["next"] or cursor
                except (WalletUnavailable, WalletRefused):
                    continue  # the next refresh says what happened
        finally:
            if client is not None:
                client.close()
