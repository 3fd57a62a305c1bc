"""``aw.connect`` / ``aw.disconnect`` / ``aw.budget`` / ``%aiwallet``: one session per kernel.

A session is this kernel's grant: the wallet's URL, the app's key (in the kernel's memory and
environment, remembered for the notebook in the OS keyring), the cell meter and the budget
feed. Everything the user sees is one line or one widget; refusals are said plainly.
"""

from __future__ import annotations

import contextlib
import html
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiwallet.notebook.cells import CellMeter, measure, now_us
from aiwallet.notebook.grants import GrantStore, Remembered
from aiwallet.notebook.status import CallsCost
from aiwallet.notebook.wallet import (
    START_HINT,
    WalletClient,
    WalletRefused,
    WalletUnavailable,
    data_dir,
    find_wallet,
)
from aiwallet.notebook.widget import Feed, new_budget_view, revoked_message

ENV_VARS = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY")
POLL_S = 30.0  # one long-poll of the connect answer
# The wallet's refusals that a cell's failed call is explained by, in one line.
PLAIN = {
    "consent_required": "{message}. Run aw.connect(...) to ask the wallet's owner again.",
    "invalid_app_key": "{message}. Run aw.connect(...) to ask the wallet's owner again.",
    "wallet_paused": "{message}. Nothing was sent or billed; try again once it is resumed.",
    "budget_exceeded": "{message}",
    "model_not_allowed": "{message}",
    "rate_limited": "{message}",
    "unknown_model": "{message}",
    "no_provider": "{message}",
    "upstream_unavailable": "{message}",
    "upstream_timeout": "{message}",
    "consent_denied": "{message}",
    "expensive_request_denied": "{message}. Nothing was sent or billed.",
    "too_many_pending": "{message}",
}


class Status:
    """The connect cell's one line (updated in place while waiting)."""

    def __init__(self, text: str, kind: str = "info") -> None:
        self.text, self.kind = text, kind

    def _repr_mimebundle_(self, **_: Any) -> dict[str, str]:
        colour = {"ok": "var(--jp-success-color1, #1a7f37)", "error": "var(--jp-error-color1, "
                  "#cf222e)", "warn": "var(--jp-warn-color1, #9a6700)"}.get(
            self.kind, "var(--jp-ui-font-color1, inherit)")  # fmt: skip
        return {
            "text/plain": f"aiwallet: {self.text}",
            "text/html": f'<div class="aiwallet-status" style="font: 13px var(--jp-ui-font-family'
            f', sans-serif); color: {colour}">aiwallet: {html.escape(self.text)}</div>',
        }


class _Shown:
    """One display slot: a display handle in IPython, plain prints elsewhere."""

    def __init__(self) -> None:
        self._handle: Any = None

    def show(self, obj: Any) -> Any:
        ip = _ipython()
        if ip is None:
            print(obj._repr_mimebundle_()["text/plain"])
            return None
        if self._handle is None:
            self._handle = _display(obj, display_id=True)
        else:
            self._handle.update(obj)
        return self._handle


def _ipython() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - a kernel always has IPython
        return None
    return get_ipython()


def _display(obj: Any, **kw: Any) -> Any:
    from IPython.display import display

    return display(obj, **kw)  # type: ignore[no-untyped-call]


def _show_line(obj: Any) -> Any:
    return _Shown().show(obj)


def notebook_path(shell: Any = None) -> str | None:
    """The notebook this kernel runs: JupyterLab and Notebook 7 tell ipykernel
    (``JPY_SESSION_NAME`` → ``__session__``), VS Code sets ``__vsc_ipynb_file__``."""
    ns = getattr(shell, "user_ns", None) or {}
    for value in (
        ns.get("__session__"),
        ns.get("__vsc_ipynb_file__"),
        os.environ.get("JPY_SESSION_NAME"),
    ):
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


@dataclass
class Session:
    url: str
    key: str
    meta: Remembered
    notebook: str | None
    remembered: bool
    root: Path  # the wallet's data dir (where the grant is remembered)
    started_us: int = field(default_factory=now_us)
    meter: CellMeter | None = None
    feed: Feed | None = None
    env_before: dict[str, str | None] = field(default_factory=dict)
    _shared: WalletClient | None = None

    @property
    def app(self) -> str:
        return self.meta.app

    def client(self) -> WalletClient:
        """A client of its own (the caller closes it)."""
        return WalletClient(self.url, self.key)

    def shared(self) -> WalletClient:
        """The session's client, kept open (one connection pool, not one per cell)."""
        if self._shared is None:
            self._shared = WalletClient(self.url, self.key)
        return self._shared

    def close(self) -> None:
        if self.feed is not None:
            self.feed.stop()
        if self._shared is not None:
            self._shared.close()
            self._shared = None


_session: Session | None = None
_hooked: Any = None  # the shell whose events carry our hooks


def current() -> Session | None:
    """This kernel's session, if connected."""
    return _session


def _describe_grant(s: Session) -> str:
    m = s.meta
    parts = [f"connected as {s.app!r}"]
    if m.models:
        parts.append("models " + ", ".join(m.models))
    if m.budget:
        parts.append(f"budget {m.budget}")
    expires = m.expires_at
    parts.append(f"until {_local(expires)}" if expires else "until revoked")
    if s.remembered:
        parts.append("remembered for this notebook")
    elif s.notebook is None:
        parts.append("not remembered (pass notebook='path.ipynb' to remember it)")
    else:
        parts.append("not remembered (no OS keyring)")
    return " · ".join(parts)


def _local(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def connect(
    name: str,
    budget: str | None = "1/day",
    models: list[str] | None = None,
    purpose: str | None = None,
    *,
    notebook: str | None = None,
    lifetime_s: int | None = None,
    wait_s: float = 600.0,
    url: str | None = None,
    home: str | None = None,
    show_budget: bool = True,
) -> None:
    """Ask the running wallet for access (or reuse this notebook's remembered grant), then
    point the openai, anthropic, litellm and LangChain clients made afterwards at it."""
    global _session
    slot = _Shown()
    asked = {"name": name, "budget": budget, "models": list(models or []), "purpose": purpose}
    nb = notebook or notebook_path(_ipython())
    try:
        client = find_wallet(url, home)
    except WalletUnavailable:
        slot.show(Status(START_HINT, "error"))
        return
    store = GrantStore(data_dir(home))
    try:
        reused = _reuse(client, store, nb, asked, slot)
        if reused is False:
            return
        if reused is None or reused is True:
            granted = _ask(client, name, asked, lifetime_s, wait_s, slot)
            if granted is None:
                return
            key, answer = granted
            meta = Remembered(
                notebook=nb or "", app=str(answer.get("app", name)),
                models=list(answer.get("models") or []), budget=answer.get("budget"),
                expires_at=answer.get("expires_at"), granted_at=datetime.now(UTC).isoformat(),
                key_prefix=key[:12], asked=asked,
            )  # fmt: skip
            reused = (meta, key, bool(nb) and store.put(meta, key))
    except WalletUnavailable:
        slot.show(Status(START_HINT, "error"))
        return
    except WalletRefused as err:  # e.g. the wallet restarted and forgot the request
        slot.show(Status(f"the wallet refused: {err}; run this cell again to ask", "error"))
        return
    finally:
        client.close()
    meta, key, remembered = reused
    _end_session(restore_env=False)
    session = Session(
        url=client.url, key=key, meta=meta, notebook=nb or None, remembered=remembered,
        root=store.root,
    )  # fmt: skip
    _activate(session)
    _session = session
    said, kind = _describe_grant(session), "ok"
    try:
        me = session.shared().me()
    except (WalletUnavailable, WalletRefused):
        me = {}
    if me.get("wallet_paused") or me.get("app_paused"):
        said += " · paused: calls are refused until the wallet's owner resumes it"
        kind = "warn"
    slot.show(Status(said, kind))
    if show_budget and _ipython() is not None:
        _display(budget_widget())


def _reuse(
    client: WalletClient,
    store: GrantStore,
    nb: str | None,
    asked: dict[str, Any],
    slot: _Shown,
) -> tuple[Remembered, str, bool] | bool | None:
    """This kernel's session or the notebook's remembered grant, when still good: (meta, key,
    remembered); None: ask; False: stop (said why)."""
    found = store.get(nb) if nb else None
    s = _session
    if found is None and s is not None and s.url == client.url and s.meta.asked == asked:
        found = (s.meta, s.key)
    if found is None:
        return None
    meta, key = found
    if meta.asked != asked:
        return None  # asked for something else: ask the wallet
    if meta.expired():
        store.forget(meta.notebook)
        return None
    probe = WalletClient(client.url, key)
    try:
        me = probe.me()
    except WalletRefused as err:
        if err.code == "consent_required":
            store.forget(meta.notebook)
            if _session is not None and _session.key == key:
                _end_session(restore_env=True)
                _unhook()
            slot.show(
                Status(
                    f"the wallet's owner revoked this notebook's access ({meta.app!r}); it is "
                    "forgotten here. Run aw.connect(...) again to ask anew.",
                    "error",
                )
            )
            return False
        if err.code == "invalid_app_key":
            store.forget(meta.notebook)
            return None  # another wallet, or the app was deleted: ask this one
        raise
    finally:
        probe.close()
    meta = Remembered(
        meta.notebook, str(me.get("app", meta.app)), list(me.get("models") or meta.models),
        meta.budget, me.get("expires_at"), meta.granted_at, meta.key_prefix, meta.asked,
    )  # fmt: skip
    return meta, key, nb is not None and store.get(nb) is not None


def _ask(
    client: WalletClient,
    name: str,
    asked: dict[str, Any],
    lifetime_s: int | None,
    wait_s: float,
    slot: _Shown,
) -> tuple[str, dict[str, Any]] | None:
    try:
        ans = client.ask(
            name, purpose=asked["purpose"], models=asked["models"] or None,
            budget=asked["budget"], lifetime_s=lifetime_s,
        )  # fmt: skip
    except WalletRefused as err:
        slot.show(Status(f"the wallet refused to ask: {err}", "error"))
        return None
    what = [f"{name!r}"]
    if asked["budget"]:
        what.append(f"budget {asked['budget']}")
    if asked["models"]:
        what.append("models " + ", ".join(asked["models"]))
    slot.show(
        Status(
            f"waiting for the wallet's owner to allow {' · '.join(what)}: answer the desktop "
            f"prompt, or run `aiwallet consent approve {ans.id}`",
            "warn",
        )
    )
    deadline = time.monotonic() + wait_s
    try:
        while ans.status == "pending":
            left = deadline - time.monotonic()
            if left <= 0:
                slot.show(Status("nobody answered in time; run this cell again to ask", "error"))
                return None
            ans = client.answer(ans, min(POLL_S, left))
    except KeyboardInterrupt:
        slot.show(Status("stopped waiting; the request stays open in the wallet", "error"))
        return None
    if ans.status != "approved":
        message = str(ans.body.get("message") or ans.status)
        text = {
            "denied": f"denied: {message}",
            "expired": f"the request expired: {message}",
            "cancelled": f"the request was withdrawn: {message}",
        }.get(ans.status, message)
        slot.show(Status(text, "error"))
        return None
    key = ans.key
    if key is None:
        slot.show(Status("approved, but the key was handed to another poller; ask again", "error"))
        return None
    return key, ans.body


def _activate(session: Session) -> None:
    """Point the SDKs at the wallet, hook the cells, start the budget feed."""
    base = session.url
    values = {
        "OPENAI_BASE_URL": base + "/v1",
        "OPENAI_API_KEY": session.key,
        "ANTHROPIC_BASE_URL": base,
        "ANTHROPIC_API_KEY": session.key,
    }
    for name, value in values.items():
        session.env_before.setdefault(name, os.environ.get(name))
        os.environ[name] = value
    session.feed = Feed(session.client)
    session.meter = CellMeter(
        client_factory=session.shared, show=_show_line, on_refusal=_said_refusal
    )
    _hook(session.meter)


_plain_said = False  # a plain error line was printed in the running cell


def _new_cell(info: Any = None) -> None:
    global _plain_said
    _plain_said = False


def _said_refusal(err: WalletRefused) -> None:
    """The wallet no longer answers this key (revoked): say it once, unless the cell's own
    failed call already said it."""
    global _plain_said
    if not _plain_said:
        print(f"aiwallet: {revoked_message(err)} (cost lines stopped)", file=sys.stderr)
    _plain_said = False


def _end_session(*, restore_env: bool) -> Session | None:
    global _session
    s, _session = _session, None
    if s is None:
        return None
    s.close()
    if restore_env:
        for name, before in s.env_before.items():
            if os.environ.get(name) in (s.key, s.url, s.url + "/v1"):
                if before is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = before
    return s


def disconnect(notebook: str | None = None, *, home: str | None = None) -> None:
    """Forget this notebook's grant (the key in the keyring and its note in the data dir),
    stop the cost lines and the widget's updates, and unset the SDK variables."""
    s = _end_session(restore_env=True)
    nb = notebook or (s.notebook if s else None) or notebook_path(_ipython())
    root = data_dir(home) if home or s is None else s.root
    forgot = GrantStore(root).forget(nb) if nb else False
    app = f" {s.app!r}" if s else ""
    said = "forgot this notebook's grant" if forgot else "nothing was remembered here"
    _Shown().show(
        Status(
            f"disconnected{app}: {said}. The app stays in the wallet until its owner revokes "
            "it (`aiwallet apps revoke NAME`).",
        )
    )


def budget() -> Any:
    """The budget widget (the text fallback where widgets cannot render); it follows the
    wallet while cells run."""
    return budget_widget()


def budget_widget() -> Any:
    s = _session
    view = new_budget_view()
    if s is None or s.feed is None:
        from aiwallet.notebook.status import BudgetView

        view.apply(BudgetView("revoked", message="not connected: run aw.connect(...) first"))
        return view
    s.feed.refresh(s.shared())
    s.feed.add(view)
    return view


def cells() -> list[dict[str, Any]]:
    """The metered cells of this session: request ids, tokens, cost (nano-dollars), line."""
    s = _session
    if s is None or s.meter is None:
        return []
    return [c.to_json() for c in s.meter.cells]


def totals() -> CallsCost:
    """This session's calls since it connected, from the ledger."""
    s = _session
    if s is None:
        return CallsCost()
    cost, _ = measure(s.shared(), s.started_us, now_us() + 1)
    return cost


# -- IPython: hooks, exceptions, the magic -----------------------------------------------------
def _hook(meter: CellMeter) -> None:
    global _hooked
    ip = _ipython()
    if ip is None:
        return
    _unhook()
    ip.register_magic_function(magic, magic_kind="line", magic_name="aiwallet")
    ip.events.register("pre_run_cell", _new_cell)
    ip.events.register("pre_run_cell", meter.pre_run_cell)
    ip.events.register("post_run_cell", meter.post_run_cell)
    _hooked = (ip, meter)
    _install_plain_errors(ip)


def _unhook() -> None:
    global _hooked
    if _hooked is None:
        return
    ip, meter = _hooked
    hooks = (
        ("pre_run_cell", _new_cell),
        ("pre_run_cell", meter.pre_run_cell),
        ("post_run_cell", meter.post_run_cell),
    )
    for name, fn in hooks:
        with contextlib.suppress(ValueError):
            ip.events.unregister(name, fn)
    _hooked = None


def wallet_error(exc: BaseException) -> tuple[str, str] | None:
    """(code, message) when ``exc`` is an SDK's error carrying one of the wallet's refusals
    (openai, anthropic, and the libraries built on them keep the HTTP response)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        code = headers.get("x-aiwallet-error-code") if headers is not None else None
        if code:
            message = None
            try:
                body = response.json()  # type: ignore[union-attr]
                err = body.get("error", body)
                message = err.get("message")
            except Exception:
                message = None
            return str(code), str(message or code)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None


def _install_plain_errors(ip: Any) -> None:
    """A cell whose AI call the wallet refused shows one line, not a traceback."""
    if getattr(ip, "_aiwallet_plain_errors", False):
        return
    before_types, before_tb = ip.custom_exceptions, ip.CustomTB

    def handler(shell: Any, etype: Any, value: Any, tb: Any, tb_offset: Any = None) -> Any:
        global _plain_said
        found = wallet_error(value)
        if found is not None and found[0] in PLAIN:
            code, message = found
            _plain_said = True
            print(f"aiwallet: {PLAIN[code].format(message=message.rstrip('.'))}", file=sys.stderr)
            return []
        if before_types and isinstance(value, before_types):
            return before_tb(etype, value, tb, tb_offset)
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset, running_compiled_code=True)
        return []

    ip.set_custom_exc((Exception,), handler)
    ip._aiwallet_plain_errors = True


def magic(line: str) -> None:
    """``%aiwallet``: this session's totals; ``%aiwallet off`` / ``on``: the cost lines."""
    arg = line.strip().lower()
    s = _session
    if arg in ("off", "on"):
        if s is None or s.meter is None:
            print("aiwallet: not connected; run aw.connect(...) first")
            return
        s.meter.enabled = arg == "on"
        print(f"aiwallet: cost lines {'on' if s.meter.enabled else 'off'}")
        return
    if arg not in ("", "totals", "budget"):
        print("aiwallet: %aiwallet [on|off|budget]")
        return
    if s is None:
        print("aiwallet: not connected; run aw.connect(...) first")
        return
    if arg == "budget":
        _display(budget_widget())
        return
    try:
        total = totals()
    except WalletUnavailable:
        print(f"aiwallet: {START_HINT}")
        return
    except WalletRefused as err:
        print(f"aiwallet: {revoked_message(err)}")
        return
    since = datetime.fromtimestamp(s.started_us / 1e6, UTC).astimezone().strftime("%H:%M")
    if total.calls == 0:
        print(f"aiwallet: no calls since {since} ({s.app})")
    else:
        print(f"aiwallet: since {since} ({s.app}): {total.line()}")


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext aiwallet``: the ``%aiwallet`` magic, and ``aw`` in the namespace."""
    import aiwallet.notebook as aw

    ip.register_magic_function(magic, magic_kind="line", magic_name="aiwallet")
    ip.user_ns.setdefault("aw", aw)
    if _session is not None and _session.meter is not None:
        _hook(_session.meter)


def unload_ipython_extension(ip: Any) -> None:
    _unhook()
