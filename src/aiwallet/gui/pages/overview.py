"""Overview: spend today / this week / this month, the wallet budget, balances, and where
to point an app."""

from __future__ import annotations

from datetime import UTC, datetime

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from aiwallet.domain.windows import describe_until
from aiwallet.gui import texts
from aiwallet.gui.controller import Controller
from aiwallet.gui.dialogs import BudgetDialog
from aiwallet.gui.pages.base import Page
from aiwallet.gui.widgets import Card, label, money
from aiwallet.service import ProviderInfo
from aiwallet.summaries import Overview, overview


class OverviewPage(Page):
    title = "Overview"

    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(controller, parent)
        self.pause_button = QPushButton(texts.PAUSE_ALL)
        self.pause_button.setObjectName("danger")
        self.pause_button.clicked.connect(self._toggle_pause)
        self.header.addWidget(self.pause_button)

        self.banner = label(texts.PAUSED_BANNER, "banner", wrap=True)
        self.banner.hide()
        self.body.addWidget(self.banner)

        spend = QHBoxLayout()
        self.today, self.week, self.month = QLabel("–"), QLabel("–"), QLabel("–")
        self.today_note = label("", "muted")
        for title, value, note in (
            ("Today", self.today, self.today_note),
            ("This week", self.week, None),
            ("This month", self.month, None),
        ):
            card = Card(title)
            value.setObjectName("bigNumber")
            card.body.addWidget(value)
            if note is not None:
                card.body.addWidget(note)
            else:
                note_text = "since Monday" if title == "This week" else "since the 1st"
                card.body.addWidget(label(note_text, "muted"))
            spend.addWidget(card)
        self.body.addLayout(spend)

        grid = QGridLayout()
        grid.setSpacing(12)
        budget_card = Card("Wallet budget (all apps together)")
        self.budget_text = label("", wrap=True)
        self.budget_bar = QProgressBar()
        self.budget_bar.setRange(0, 1000)
        self.budget_bar.setTextVisible(False)
        self.budget_reset = label("", "muted")
        edit = QPushButton("Set wallet budget…")
        edit.clicked.connect(self._edit_budget)
        budget_card.body.addWidget(self.budget_text)
        budget_card.body.addWidget(self.budget_bar)
        budget_card.body.addWidget(self.budget_reset)
        budget_card.body.addLayout(_left(edit))
        budget_card.body.addStretch(1)
        grid.addWidget(budget_card, 0, 0)

        balances = Card("Balances")
        self.balances_list = label("", wrap=True)
        balances.body.addWidget(self.balances_list)
        balances.body.addWidget(label(texts.BALANCES_NOTE, "muted", wrap=True))
        balances.body.addStretch(1)
        grid.addWidget(balances, 0, 1)

        connect = Card("Point your app here")
        row = QHBoxLayout()
        self.url = label("")
        self.url.setObjectName("bigNumber")
        copy = QPushButton("Copy URL")
        copy.clicked.connect(lambda: self._copy(self.controller.url))
        row.addWidget(self.url, 1)
        row.addWidget(copy)
        connect.body.addLayout(row)
        self.engine_status = label("", "muted", wrap=True)
        connect.body.addWidget(self.engine_status)
        self.snippets = QTabWidget()
        self._snippet_edits: list[QPlainTextEdit] = []
        for name in ("OpenAI SDK", "Anthropic SDK"):
            tab = QWidget()
            lay = QVBoxLayout(tab)
            lay.setContentsMargins(6, 6, 6, 6)
            edit_box = QPlainTextEdit()
            edit_box.setObjectName("code")
            edit_box.setReadOnly(True)
            edit_box.setFixedHeight(edit_box.fontMetrics().lineSpacing() * 3 + 16)
            self._snippet_edits.append(edit_box)
            copy_snippet = QPushButton("Copy")
            copy_snippet.clicked.connect(lambda _=False, e=edit_box: self._copy(e.toPlainText()))
            lay.addWidget(edit_box)
            lay.addLayout(_left(copy_snippet))
            self.snippets.addTab(tab, name)
        connect.body.addWidget(self.snippets)
        connect.body.addWidget(label(texts.CONNECT_HINT, "muted", wrap=True))
        grid.addWidget(connect, 1, 0, 1, 2)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        self.body.addLayout(grid)
        self.body.addStretch(1)

        controller.paused_changed.connect(self._show_paused)
        controller.engine_changed.connect(self._show_engine)
        self._show_engine()
        self._show_paused(controller.paused)

    # -- data -------------------------------------------------------------------------------
    async def refresh(self) -> None:
        wallet = self.controller.wallet
        ov, providers = await self.controller.run(
            lambda: (overview(wallet), wallet.list_providers())
        )
        self.show_overview(ov, providers)

    def show_overview(self, ov: Overview, providers: list[ProviderInfo]) -> None:
        now = datetime.now(UTC)
        self.today.setText(money(ov.today_nano))
        self.today_note.setText(f"{ov.requests_today:,} requests")
        self.week.setText(money(ov.week_nano))
        self.month.setText(money(ov.month_nano))
        b = ov.wallet_budget
        if b is None:
            self.budget_text.setText(texts.NO_WALLET_BUDGET)
            self.budget_bar.hide()
            self.budget_reset.setText("")
        else:
            self.budget_bar.show()
            self.budget_text.setText(
                f"{money(b.spent_nano)} spent of {b.spec.describe()} · "
                f"{money(b.remaining_nano)} left"
            )
            self.budget_bar.setValue(min(int(b.used_fraction * 1000), 1000))
            self.budget_reset.setText(f"Budget {describe_until(now, b.reset_at)}")
        if providers:
            lines = [
                f"<b>{p.name}</b> ({p.kind}) · key {p.key_hint or 'none'} · "
                + {True: "last test passed", False: "last test FAILED", None: "not tested"}[
                    p.last_test_ok
                ]
                for p in providers
            ]
            self.balances_list.setText("<br>".join(lines))
        else:
            self.balances_list.setText(
                "No provider key yet. Add one under <b>Providers and keys</b>."
            )
        self._show_paused(ov.paused)

    def _show_engine(self) -> None:
        url = self.controller.url
        self.url.setText(url)
        for edit, snippet in zip(
            self._snippet_edits, (texts.OPENAI_SNIPPET, texts.ANTHROPIC_SNIPPET), strict=True
        ):
            edit.setPlainText(snippet.format(url=url))
        if self.controller.engine is not None:
            self.engine_status.setText("The engine is running and listens on loopback only.")
        elif self.controller.engine_error:
            self.engine_status.setText(
                texts.ENGINE_FAILED.format(error=self.controller.engine_error)
            )
        else:
            self.engine_status.setText(texts.ENGINE_STARTING)

    def _show_paused(self, paused: bool) -> None:
        self.banner.setVisible(paused)
        self.pause_button.setText(texts.RESUME_ALL if paused else texts.PAUSE_ALL)
        self.pause_button.setObjectName("primary" if paused else "danger")
        self.pause_button.style().unpolish(self.pause_button)
        self.pause_button.style().polish(self.pause_button)

    # -- actions ----------------------------------------------------------------------------
    def _toggle_pause(self) -> None:
        self.controller.spawn(
            self.controller.set_paused(not self.controller.paused), "Pause switch"
        )

    def _edit_budget(self) -> None:
        dialog = BudgetDialog("the wallet (all apps together)", None, self)
        if dialog.exec():
            spec = dialog.spec
            wallet = self.controller.wallet
            self.controller.spawn(
                self.controller.run(wallet.set_budget, spec, None), "Setting the wallet budget"
            )

    @staticmethod
    def _copy(text: str) -> None:
        clip = QGuiApplication.clipboard()
        clip.setText(text)


def _left(widget: QWidget) -> QHBoxLayout:
    """A button at its natural width, on the left."""
    row = QHBoxLayout()
    row.addWidget(widget)
    row.addStretch(1)
    return row
