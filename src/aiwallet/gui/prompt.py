"""The consent prompt and its queue.

A prompt shows who asks (the name an app gave, or the program: executable, pid, command
line), what (the held request's model and worst-case cost; models, budget, period, duration)
and why (the purpose it declared, in its own words). Deny / Allow once / Allow with a budget
and duration, editable before approving. Models default to what was asked; "any model" is a
checkbox naming the models it covers, never a bare ``*``. The duration defaults to "until
this program exits" for a keyless caller whose process is known, else to what a connect asked
or one hour: a grant until revoked is a choice, never the default. An expensive request (a
known app over its ask-before threshold) is let through once or denied. A payment (an x402
router asks to be paid by a payee the wallet has not paid before) shows the payee, the
amount in dollars and USDC, the network (REAL MONEY on mainnet), the resource, provider and
model, and is paid once or always, or refused once or for good; nothing is the default.

It stays on top; Esc and closing deny once; any interaction stops the countdown; "remember"
is never pre-checked; a timeout denies once and remembers nothing. Requests queue; one
withdrawn (its client left) or answered elsewhere (the CLI) disappears from the queue, and
from the screen if it was showing.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QKeyEvent, QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from aiwallet.domain.chains import USDC_DECIMALS, format_atomic, url_host
from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.money import format_usd, parse_budget_spec, usd_to_nano
from aiwallet.gui import texts
from aiwallet.gui.dialogs import BudgetEditor
from aiwallet.gui.widgets import (
    CallerLabel,
    CallerWords,
    label,
    money_badge,
    mono_font,
    shown,
    tooltip_text,
)

Answer = dict[str, Any]  # {"action": "deny"|"once"|"allow"|"pay", ...}
EXPENSIVE = "expensive"
PAYMENT = "payment"  # engine/consent.py PAYMENT: an x402 payment to a payee not paid before
ASKED = "asked"  # the duration choice "the lifetime a connect request asked for"
# The durations offered, each the engine's ``duration`` (engine/consent.py DURATIONS).
DURATION_CHOICES = (
    ("Once (this request, for 2 minutes)", "once"),
    ("15 minutes", "15m"),
    ("1 hour", "1h"),
    ("Until this program exits", "exit"),
    ("Until I revoke it", "always"),
)
SHOWN_NAMES = 3  # model names spelled out in the "any model" choice (all are in its tooltip)


class ConsentPrompt(QDialog):
    answered = Signal(str, dict)  # request id, answer

    def __init__(self, request: dict[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.request = request
        self.request_id: str = request["id"]
        self._done = False
        self.kind: str = str(request.get("kind") or "keyless")
        expensive = self.kind == EXPENSIVE
        payment = self.kind == PAYMENT
        one_off = expensive or payment  # about one request: no models, budget or duration
        held = request.get("held_request") or None
        self.setWindowTitle(
            texts.PROMPT_PAYMENT_TITLE
            if payment
            else texts.PROMPT_EXPENSIVE_TITLE
            if expensive
            else texts.PROMPT_TITLE
        )
        self.setWindowFlag(Qt.WindowType.WindowStaysOnTopHint, True)
        self.setModal(False)
        self.setMinimumWidth(520)
        lay = QVBoxLayout(self)
        lay.setSpacing(10)
        lay.setContentsMargins(20, 16, 20, 16)

        self.position = label("", "muted")
        self.position.hide()
        lay.addWidget(self.position)
        proc = request.get("process") or {}
        # The name is the caller's own claim; the program below is what the OS says.
        self.heading = CallerLabel(
            request.get("app_name") or "An unknown program", "promptTitle", max_width=600
        )
        lay.addWidget(self.heading)
        if expensive:
            wants = texts.PROMPT_EXPENSIVE.format(
                threshold=_usd((held or {}).get("threshold_usd")),
                whose=" for this app"
                if (held or {}).get("threshold_of") == "app"
                else " for the whole wallet",
            )
        elif payment:
            wants = texts.PROMPT_PAYMENT
        else:
            wants = texts.PROMPT_WANTS if self.kind == "connect" else texts.PROMPT_KEYLESS
        self.wants = label(wants, wrap=True)
        lay.addWidget(self.wants)

        facts = QFormLayout()
        facts.setHorizontalSpacing(14)
        facts.setVerticalSpacing(8)
        self.command: CallerWords | None = None
        self.script: CallerLabel | None = None
        if proc:
            self.program = CallerLabel(
                proc.get("exe") or "unknown executable", mode=Qt.TextElideMode.ElideMiddle
            )
            facts.addRow(label("Program"), self.program)
            if proc.get("script"):
                # what the interpreter runs: part of who is asking (domain/programs.py)
                self.script = CallerLabel(proc["script"], mode=Qt.TextElideMode.ElideMiddle)
                facts.addRow(label("Script"), self.script)
            facts.addRow(
                label("Process"),
                label(_process_line(proc)),
            )
            cmd = _command_line(proc.get("cmdline") or [])
            if cmd:
                self.command = CallerWords(cmd, max_lines=2)
                facts.addRow(label("Command"), self.command)
        else:
            facts.addRow(
                label("Program"),
                label(
                    "not known (the caller is not on this machine's process table)",
                    "muted",
                    wrap=True,
                ),
            )
        # What the held request would cost at worst: the amount its reservation will hold.
        self.cost: Any = None
        self.payee: CallerWords | None = None
        self.network: Any = None
        self.badge: Any = None
        if payment:
            self._payment_rows(facts, held or {})
        elif held:
            self.cost = label(_cost_line(held), wrap=True)
            bold = self.cost.font()
            bold.setBold(True)
            self.cost.setFont(bold)
            facts.addRow(label("This request"), self.cost)
        self.purpose: CallerWords | None = None
        self.no_purpose: Any = None
        if request.get("purpose"):
            self.purpose = CallerWords(request["purpose"], max_lines=4)
            facts.addRow(label(texts.PROMPT_WHY), self.purpose)
        elif not one_off:  # a known app's request is not asked why: it was, when connecting
            self.no_purpose = label(texts.PROMPT_NO_PURPOSE, "muted")
            facts.addRow(label(texts.PROMPT_WHY), self.no_purpose)
        lay.addLayout(facts)

        asked = QFormLayout()
        asked.setHorizontalSpacing(14)
        # What is shown is what an approval grants: the display form of each model asked;
        # "*" is never shown bare but as the explicit choice of every model served, by name.
        wanted = [str(m) for m in request.get("models") or []]
        self.served: list[str] = [str(m) for m in request.get("served_models") or []]
        served_count = int(request.get("served_count") or len(self.served))
        self.models = QLineEdit(", ".join(shown(m) for m in wanted if m != "*"))
        self.models.setToolTip("Models or patterns it may use, e.g. gpt-4o-mini, anthropic/*")
        self.any_model = QCheckBox(_any_model_text(self.served, served_count))
        self.any_model.setToolTip(
            tooltip_text(", ".join(self.served) or "no model yet: add a provider", limit=2000)
        )
        self.any_model.toggled.connect(self._any_model_toggled)
        self.any_model.setChecked("*" in wanted)
        self._any_model_toggled("*" in wanted)
        spec = None
        if request.get("budget"):
            try:
                spec = parse_budget_spec(request["budget"])
            except InvalidInput:
                spec = None
        self.budget = BudgetEditor(spec)
        self.lifetime = duration_combo(request)
        models_box = QVBoxLayout()
        models_box.setSpacing(4)
        models_box.addWidget(self.models)
        models_box.addWidget(self.any_model)
        asked.addRow(label("Models"), models_box)
        asked.addRow(label("Budget"), self.budget)
        asked.addRow(label("Lasts"), self.lifetime)
        self.asked = QWidget()
        self.asked.setLayout(asked)
        self.asked.setVisible(not one_off)  # one expensive request is let through, once
        lay.addWidget(self.asked)
        self.error = label("", "warning", wrap=True)
        self.error.hide()
        lay.addWidget(self.error)

        self.remember = QCheckBox(texts.PROMPT_REMEMBER)
        self.remember.setChecked(False)
        self.remember.setVisible(not one_off)  # each expensive request is asked on its own
        lay.addWidget(self.remember)
        # Widening a remembered decision to every script of the interpreter is a choice made
        # here, never the default.
        self.any_script = QCheckBox(
            f"Apply to any script {shown(_program_name(proc))} runs, not only this one"
        )
        self.any_script.setChecked(False)
        self._can_widen = request.get("kind") == "keyless" and bool(proc.get("script"))
        self.any_script.setVisible(self._can_widen)
        lay.addWidget(self.any_script)

        self.countdown = label("", "muted")
        lay.addWidget(self.countdown)
        buttons = QHBoxLayout()
        self.deny_button = QPushButton("Deny")
        self.once_button = QPushButton("Allow once")
        self.allow_button = QPushButton("Allow with budget")
        self.never_button = QPushButton("Never pay this payee")
        self.allow_button.setObjectName("primary")
        if expensive:
            self.allow_button.setText("Allow this request")
            self.once_button.hide()
        if payment:
            # Paying is never the default, and paying for good is never the likeliest click.
            self.deny_button.setText("Don't pay")
            self.once_button.setText("Pay once")
            self.once_button.setObjectName("primary")
            self.allow_button.setText("Always pay this payee")
            self.allow_button.setObjectName("")
            self.deny_button.clicked.connect(self.dont_pay)
            self.never_button.clicked.connect(self.never_pay)
            self.once_button.clicked.connect(self.pay_once)
            self.allow_button.clicked.connect(self.pay_always)
        else:
            self.never_button.hide()
            self.deny_button.clicked.connect(self.deny)
            self.once_button.clicked.connect(self.allow_once)
            self.allow_button.clicked.connect(self.allow)
        buttons.addWidget(self.deny_button)
        buttons.addWidget(self.never_button)
        buttons.addStretch(1)
        buttons.addWidget(self.once_button)
        buttons.addWidget(self.allow_button)
        lay.addLayout(buttons)
        # No default button: Enter must not approve anything by accident.
        for b in (self.deny_button, self.never_button, self.once_button, self.allow_button):
            b.setAutoDefault(False)
            b.setDefault(False)

        self.remaining = int(request.get("expires_in_s") or 60)
        self.counting = True
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._on_tick)
        self._tick.start()
        self._show_countdown()
        for child in self.findChildren(QWidget):
            child.installEventFilter(self)

    def _payment_rows(self, facts: QFormLayout, held: dict[str, Any]) -> None:
        """What the router asks: the amount, the network (REAL MONEY on mainnet), the payee
        (its address, in full), and what it is for (resource, provider, model)."""
        self.cost = label(_payment_amount(held), wrap=True)
        bold = self.cost.font()
        bold.setBold(True)
        self.cost.setFont(bold)
        facts.addRow(label("Amount"), self.cost)
        row = QHBoxLayout()
        row.setSpacing(8)
        self.network = label(_network_text(held))
        self.badge = money_badge(bool(held.get("real_money")))
        row.addWidget(self.network)
        row.addWidget(self.badge)
        row.addStretch(1)
        facts.addRow(label("Network"), row)
        self.payee = CallerWords(held.get("payee") or "unknown", max_lines=2, limit=200)
        self.payee.setFont(mono_font())
        facts.addRow(label("Pay to"), self.payee)
        facts.addRow(label("Provider"), CallerLabel(held.get("provider") or "unknown"))
        facts.addRow(label("Model"), CallerLabel(held.get("model") or "not named"))
        if held.get("resource"):
            resource = CallerLabel(held["resource"], mode=Qt.TextElideMode.ElideMiddle)
            facts.addRow(label("Resource"), resource)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        QTimer.singleShot(0, lambda: self._fit_height(3))

    def _fit_height(self, tries: int) -> None:
        """Tall enough for every row at this width. A caller's words wrap only once their box
        has its width, and a top-level window does not grow for a row that did (the rows
        would overlap), so the height is set from the layout's height for this width."""
        lay = self.layout()
        if lay is None or self._done:
            return
        needed = lay.totalHeightForWidth(self.width())
        if needed > self.height():
            self.resize(self.width(), needed)
            if tries > 1:
                QTimer.singleShot(0, lambda: self._fit_height(tries - 1))

    # -- countdown ----------------------------------------------------------------------------
    def stop_countdown(self) -> None:
        if self.counting:
            self.counting = False
            self._tick.stop()
            self.countdown.setText(texts.PROMPT_STOPPED)

    def _on_tick(self) -> None:
        self.remaining -= 1
        if self.remaining <= 0:
            self._answer({"action": "deny", "always": False, "timeout": True})
            return
        self._show_countdown()

    def _show_countdown(self) -> None:
        self.countdown.setText(texts.PROMPT_COUNTDOWN.format(s=self.remaining))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in (
            QEvent.Type.MouseButtonPress,
            QEvent.Type.KeyPress,
            QEvent.Type.Wheel,
        ):
            self.stop_countdown()
        return False

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.deny_once()
            return
        self.stop_countdown()
        super().keyPressEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._done:
            self._answer({"action": "deny", "always": False})
        super().closeEvent(event)

    def reject(self) -> None:  # Esc through QDialog
        self.deny_once()

    # -- answers ------------------------------------------------------------------------------
    def deny_once(self) -> None:
        self._answer({"action": "deny", "always": False})

    def deny(self) -> None:
        self._answer(
            {"action": "deny", "always": self.remember.isChecked(), "scope": self._scope()}
        )

    def dont_pay(self) -> None:
        self._answer({"action": "deny", "always": False})

    def never_pay(self) -> None:
        """Refuse this payee for good (a remembered rule, shown in ``aiwallet consent list``)."""
        self._answer({"action": "deny", "always": True})

    def pay_once(self) -> None:
        self._answer({"action": "pay", "always": False})

    def pay_always(self) -> None:
        self._answer({"action": "pay", "always": True})

    def allow_once(self) -> None:
        models = self._models()
        if models is not None:
            self._answer({"action": "once", "models": models})

    def allow(self) -> None:
        if self.kind == EXPENSIVE:  # let this one request through; nothing else is granted
            self._answer({"action": "once", "models": None})
            return
        models = self._models()
        if models is None:
            return
        try:
            spec = self.budget.spec()
        except InvalidInput as exc:
            self._show_error(str(exc))
            return
        duration = self.lifetime.currentData()
        self._answer(
            {
                "action": "allow",
                "budget": str(spec),
                "models": models,
                "duration": None if duration == ASKED else duration,
                "lifetime_s": self.request.get("lifetime_s") if duration == ASKED else None,
                "scope": self._scope(),
            }
        )

    def _show_error(self, text: str) -> None:
        self.stop_countdown()
        self.error.setText(text)
        self.error.show()

    def _any_model_toggled(self, on: bool) -> None:
        self.models.setEnabled(not on)
        self.models.setPlaceholderText("" if on else "gpt-4o-mini, anthropic/*")

    def _scope(self) -> str:
        return "program" if self._can_widen and self.any_script.isChecked() else "script"

    def _models(self) -> list[str] | None:
        """The models an approval grants (``*`` only when "any model" is ticked); None, with
        the reason shown, when none is named."""
        if self.any_model.isChecked():
            return ["*"]
        named = [m.strip() for m in self.models.text().split(",") if m.strip()]
        if not named:
            self._show_error(texts.PROMPT_NO_MODEL)
            return None
        return named

    def _answer(self, answer: Answer) -> None:
        if self._done:
            return
        self._done = True
        self._tick.stop()
        self.answered.emit(self.request_id, answer)
        self.hide()
        self.deleteLater()

    def withdraw(self) -> None:
        """The request ended elsewhere: close without answering."""
        if self._done:
            return
        self._done = True
        self._tick.stop()
        self.hide()
        self.deleteLater()


class PromptQueue(QObject):
    """One prompt on screen at a time; the rest wait in arrival order."""

    shown = Signal(str)  # request id now on screen
    changed = Signal()

    def __init__(
        self,
        answer: Callable[[str, Answer], None],
        parent_widget: Callable[[], QWidget | None] = lambda: None,
    ) -> None:
        super().__init__()
        self._answer = answer
        self._parent_widget = parent_widget
        self.queue: list[dict[str, Any]] = []
        self.current: ConsentPrompt | None = None

    def add(self, request: dict[str, Any]) -> None:
        if any(r["id"] == request["id"] for r in self.queue) or (
            self.current is not None and self.current.request_id == request["id"]
        ):
            return
        self.queue.append(request)
        self.changed.emit()
        self._next()

    def withdraw(self, request_id: str) -> None:
        """Answered elsewhere, expired, or its client left."""
        self.queue = [r for r in self.queue if r["id"] != request_id]
        if self.current is not None and self.current.request_id == request_id:
            self.current.withdraw()
            self.current = None
            self._next()
        self.changed.emit()
        self._update_position()

    def show_request(self, request_id: str) -> None:
        """Bring a queued request to the front (from the tray's recent prompts)."""
        if self.current is not None and self.current.request_id == request_id:
            self.current.raise_()
            self.current.activateWindow()
            return
        for r in self.queue:
            if r["id"] == request_id:
                self.queue.remove(r)
                self.queue.insert(0, r)
        self._update_position()

    @property
    def waiting(self) -> int:
        return len(self.queue) + (1 if self.current is not None else 0)

    def _next(self) -> None:
        if self.current is not None or not self.queue:
            self._update_position()
            return
        request = self.queue.pop(0)
        prompt = ConsentPrompt(request, self._parent_widget())
        prompt.answered.connect(self._on_answered)
        self.current = prompt
        self._update_position()
        prompt.show()
        prompt.raise_()
        prompt.activateWindow()
        self.shown.emit(request["id"])

    def _update_position(self) -> None:
        if self.current is None:
            return
        more = len(self.queue)
        self.current.position.setText(f"{more} more waiting after this one" if more else "")
        self.current.position.setVisible(bool(more))

    def _on_answered(self, request_id: str, answer: Answer) -> None:
        self.current = None
        self._answer(request_id, answer)
        self.changed.emit()
        self._next()


def duration_combo(request: dict[str, Any]) -> QComboBox:
    """How long an approval lasts, as the engine's ``duration``. "Until this program exits"
    is offered only when the requester's process is known (the engine watches its pid) and is
    the default for a keyless caller; a connect defaults to the lifetime it asked, else one
    hour. "Until I revoke it" is always a choice made here."""
    proc = request.get("process") or {}
    known = proc.get("pid") is not None
    combo = QComboBox()
    asked = request.get("lifetime_s")
    if asked:
        combo.addItem(f"As it asked: {_span(int(asked))}", ASKED)
    for text, value in DURATION_CHOICES:
        if value != "exit" or known:
            combo.addItem(text, value)
    keyless = request.get("kind") == "keyless"
    default = ASKED if asked else "exit" if keyless and known else "1h"
    combo.setCurrentIndex(max(0, combo.findData(default)))
    return combo


def _span(seconds: int) -> str:
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n:,} {unit}{'s' if n != 1 else ''}"
    return f"{seconds:,} seconds"


def _usd(value: object) -> str:
    """Exact dollars from the engine's 9-decimal text (``0.096300000`` → ``$0.0963``)."""
    try:
        return format_usd(usd_to_nano(str(value)), places=None)
    except (InvalidInput, ValueError, ArithmeticError):
        return "an unknown amount"


def _cost_line(held: dict[str, Any]) -> str:
    tokens = held.get("max_output_tokens")
    return texts.PROMPT_COST.format(
        cost=_usd(held.get("worst_case_usd")),
        model=shown(held.get("model"), 80),
        tokens=f"{tokens:,}" if isinstance(tokens, int) else "?",
    )


def _payment_amount(held: dict[str, Any]) -> str:
    """``$0.01 (0.01 USDC) for this request``, both exact."""
    try:
        tokens = f"{format_atomic(int(str(held.get('amount_atomic'))), USDC_DECIMALS)} USDC"
    except ValueError:
        tokens = "an unknown amount of USDC"
    return texts.PROMPT_PAYMENT_AMOUNT.format(usd=_usd(held.get("amount_usd")), usdc=tokens)


def _network_text(held: dict[str, Any]) -> str:
    """The engine's line for the network (``Network.describe()``), a custom RPC named by its
    host only (a URL may hold a key: one is cut to its host here too)."""
    text = shown(held.get("network_label") or held.get("network") or "unknown network", 160)
    return re.sub(r" via (\S+://\S+)", lambda m: f" via {url_host(m.group(1))}", text)


def _any_model_text(served: list[str], count: int) -> str:
    names = ", ".join(shown(m, 40) for m in served[:SHOWN_NAMES])
    more = ", …" if count > SHOWN_NAMES else ""
    return texts.PROMPT_ANY_MODEL.format(n=f"{count:,}", names=f": {names}{more}" if names else "")


def _process_line(proc: dict[str, Any]) -> str:
    """``pid 123 · user alice`` (the pid is unknown when the kernel named only the socket's
    owner: another user's process, seen by an engine that is not root)."""
    pid = proc.get("pid")
    who = proc.get("user") or (f"uid {proc['uid']}" if proc.get("uid") is not None else "?")
    return f"{'pid ' + shown(pid) if pid is not None else 'pid unknown'} · user {shown(who)}"


def _program_name(proc: dict[str, Any]) -> str:
    exe = str(proc.get("exe") or "this program")
    return exe.replace("\\", "/").rsplit("/", 1)[-1]


def _command_line(cmdline: list[str]) -> str:
    """The arguments as a shell would need them typed (quoted where they hold spaces or
    markup), so one argument cannot pass for several."""
    return shlex.join(str(a) for a in cmdline)
