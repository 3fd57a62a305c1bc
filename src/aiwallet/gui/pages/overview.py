"""Overview: spend today / this week / this month, the wallet budget, balances (the providers'
credit, and the Solana wallet's USDC and SOL with its network), and where to point an app;
until the first spend, three first steps (each marked when done)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

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

from aiwallet.domain.chains import format_sol
from aiwallet.domain.money import BudgetSpec
from aiwallet.domain.providers import KINDS, KINDS_WITH_BALANCE
from aiwallet.domain.reports import RequestFilter
from aiwallet.domain.windows import describe_until
from aiwallet.gui import texts
from aiwallet.gui.controller import Controller
from aiwallet.gui.dialogs import BudgetDialog
from aiwallet.gui.pages.base import Page
from aiwallet.gui.solana_view import SolanaReading, network_line
from aiwallet.gui.widgets import (
    OK_COLOUR,
    Card,
    copy_button,
    html_text,
    label,
    money,
    money_badge,
    rich_label,
    set_money_badge,
    shown,
    tooltip_text,
)
from aiwallet.service import ProviderInfo, Wallet
from aiwallet.summaries import (
    Overview,
    app_summaries,
    budget_outlook,
    month_by_app,
    overview,
    plural,
)

if TYPE_CHECKING:
    from aiwallet.solana_account import SolanaStatus


@dataclass(frozen=True, slots=True)
class FirstSteps:
    """Where a new wallet stands: a provider, an app (made or prompted), a request; the
    steps are shown until anything was spent."""

    provider: bool
    app: bool
    request: bool
    spent: bool

    @property
    def done(self) -> tuple[bool, bool, bool]:
        return (self.provider, self.app, self.request)

    @classmethod
    def of(cls, wallet: Wallet) -> FirstSteps:  # blocking: run off the GUI thread
        return cls(
            provider=bool(wallet.providers.list()),
            app=bool(wallet.apps.list()),
            request=wallet.reports.request_count(RequestFilter()) > 0,
            spent=wallet.reports.spend_total() > 0,
        )


class StepsCard(Card):
    """The three first steps, each a number that becomes a check mark when done."""

    def __init__(self) -> None:
        super().__init__(texts.FIRST_STEPS_TITLE)
        self.marks: list[QLabel] = []
        self.lines: list[QLabel] = []
        for i, text in enumerate(texts.FIRST_STEPS, 1):
            row = QHBoxLayout()
            mark = label(f"{i}.")
            font = mark.font()
            font.setBold(True)
            mark.setFont(font)
            mark.setFixedWidth(mark.fontMetrics().horizontalAdvance("✓ 0.") + 4)
            line = label(text, wrap=True)
            row.addWidget(mark)
            row.addWidget(line, 1)
            self.body.addLayout(row)
            self.marks.append(mark)
            self.lines.append(line)

    def show_steps(self, steps: FirstSteps) -> None:
        self.setVisible(not steps.spent)
        for i, (mark, line, done) in enumerate(
            zip(self.marks, self.lines, steps.done, strict=True), 1
        ):
            mark.setText(f"✓ {i}." if done else f"{i}.")
            mark.setStyleSheet(f"color: {OK_COLOUR};" if done else "")
            line.setObjectName("muted" if done else "")
            line.setToolTip("done" if done else "")
            for widget in (mark, line):
                widget.style().unpolish(widget)
                widget.style().polish(widget)


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

        self.steps = StepsCard()
        self.steps.hide()  # shown by the first refresh unless something was spent
        self.body.addWidget(self.steps)

        spend = QHBoxLayout()
        self.today, self.week, self.month = label("–"), label("–"), label("–")
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
        self.budget_outlook = label("", "muted", wrap=True)
        edit = QPushButton("Set wallet budget…")
        edit.clicked.connect(self._edit_budget)
        budget_card.body.addWidget(self.budget_text)
        budget_card.body.addWidget(self.budget_bar)
        budget_card.body.addWidget(self.budget_reset)
        budget_card.body.addWidget(self.budget_outlook)
        budget_card.body.addLayout(_left(edit))
        budget_card.body.addStretch(1)
        grid.addWidget(budget_card, 0, 0)

        top = Card("This month by app")
        self.top_apps = QVBoxLayout()
        self.top_apps.setSpacing(4)
        top.body.addLayout(self.top_apps)
        top.body.addStretch(1)
        grid.addWidget(top, 0, 1)

        balances = Card("Providers and balances")
        # The Solana wallet (x402 payments): its USDC and SOL, on which network.
        self.solana_box = QWidget()
        solana_lay = QVBoxLayout(self.solana_box)
        solana_lay.setContentsMargins(0, 0, 0, 6)
        solana_lay.setSpacing(2)
        solana_head = QHBoxLayout()
        self.solana_title = rich_label("<b>Solana wallet</b>")
        self.solana_badge = money_badge(False)
        solana_head.addWidget(self.solana_title)
        solana_head.addWidget(self.solana_badge)
        solana_head.addStretch(1)
        solana_lay.addLayout(solana_head)
        self.solana_network = label("", "muted", wrap=True)
        solana_lay.addWidget(self.solana_network)
        self.solana_text = rich_label("", wrap=True)  # figures only: the app's own words
        solana_lay.addWidget(self.solana_text)
        self.solana_box.hide()
        balances.body.addWidget(self.solana_box)
        self.solana_hint = label(texts.OVERVIEW_NO_SOLANA, "muted", wrap=True)
        self.solana_hint.hide()
        balances.body.addWidget(self.solana_hint)
        self.solana_status: SolanaStatus | None = None
        self.balances_list = rich_label("", wrap=True)  # names and problems escaped
        balances.body.addWidget(self.balances_list)
        self.balances_note = label(texts.BALANCES_NOTE, "muted", wrap=True)
        balances.body.addWidget(self.balances_note)
        balances.body.addStretch(1)
        grid.addWidget(balances, 0, 2)

        connect = Card("Point your app here")
        row = QHBoxLayout()
        self.url = label("")
        self.url.setObjectName("bigNumber")
        copy = QPushButton("Copy URL")
        copy_button(copy, lambda: self.controller.url)
        self.copy_url = copy
        row.addWidget(self.url, 1)
        row.addWidget(copy)
        connect.body.addLayout(row)
        self.engine_status = label("", "muted", wrap=True)
        self.retry = QPushButton("Start the engine again")
        self.retry.clicked.connect(self._retry)
        self.retry.hide()
        status_row = QHBoxLayout()
        status_row.addWidget(self.engine_status, 1)
        status_row.addWidget(self.retry)
        connect.body.addLayout(status_row)
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
            copy_button(copy_snippet, edit_box.toPlainText)
            lay.addWidget(edit_box)
            lay.addLayout(_left(copy_snippet))
            self.snippets.addTab(tab, name)
        connect.body.addWidget(self.snippets)
        connect.body.addWidget(label(texts.CONNECT_HINT, "muted", wrap=True))
        grid.addWidget(connect, 1, 0, 1, 3)
        for col in range(3):
            grid.setColumnStretch(col, 1)
        self.body.addLayout(grid)
        self.body.addStretch(1)

        self.wallet_budget: BudgetSpec | None = None
        self.providers: list[ProviderInfo] = []
        controller.paused_changed.connect(self._show_paused)
        controller.engine_changed.connect(self._show_engine)
        controller.solana_changed.connect(self._show_solana_reading)
        self._show_engine()
        self._show_paused(controller.paused)

    # -- data -------------------------------------------------------------------------------
    async def refresh(self) -> None:
        wallet = self.controller.wallet
        ov, providers, by_app, steps, apps, solana = await self.controller.run(
            lambda: (
                overview(wallet),
                wallet.list_providers(),
                month_by_app(wallet),
                FirstSteps.of(wallet),
                app_summaries(wallet),
                wallet.solana.status(),
            )
        )
        self.steps.show_steps(steps)
        self.show_overview(ov, providers)
        self.show_solana(solana, providers)
        now = datetime.now(UTC)
        outlooks = {a.name: budget_outlook(a.budget, a.burn_nano_per_hour, now) for a in apps}
        self.show_top_apps(by_app, ov.month_nano, outlooks)
        if self.controller.balances_stale(providers):
            self.controller.spawn(self._load_balances(providers), "Reading balances")

    def show_solana(self, status: SolanaStatus, providers: list[ProviderInfo]) -> None:
        """The Solana wallet's line: nothing without a key (a hint when an x402 router is
        set up), else its network and what the last reading said."""
        self.solana_status = status
        keyed = status.address is not None
        self.solana_box.setVisible(keyed)
        x402 = any(KINDS[p.kind].x402 for p in providers if p.kind in KINDS)
        self.solana_hint.setVisible(not keyed and x402)
        if not keyed:
            return
        net = status.network
        self.solana_network.setText(network_line(net))
        set_money_badge(self.solana_badge, net.real_money)
        reading = self.controller.solana
        if self._solana_reading_fits(reading):
            assert reading is not None
            self._show_solana_figures(reading)
        else:
            self.solana_text.setText("reading the balances…")
        if self.controller.solana_stale() or not self._solana_reading_fits(reading):
            self.controller.spawn(self.controller.load_solana(), "Reading the Solana wallet")

    def _solana_reading_fits(self, reading: SolanaReading | None) -> bool:
        st = self.solana_status
        return (
            st is not None
            and reading is not None
            and reading.address == st.address
            and reading.network == st.network
        )

    def _show_solana_reading(self) -> None:
        reading = self.controller.solana
        if reading is not None and self._solana_reading_fits(reading):
            self._show_solana_figures(reading)
        self.show_providers(self.providers)

    def _show_solana_figures(self, reading: SolanaReading) -> None:
        if reading.problem or reading.sol_lamports is None:
            self.solana_text.setText(f"balances unknown: {html_text(reading.problem or '?')}")
            self.solana_text.setToolTip(tooltip_text(reading.detail) if reading.detail else "")
            return
        token = reading.usdc
        amount = token.amount if token is not None else "0"
        sol = format_sol(reading.sol_lamports)
        self.solana_text.setText(f"<b>{html_text(amount)} USDC</b> · {html_text(sol)}")
        self.solana_text.setToolTip("")

    async def _load_balances(self, providers: list[ProviderInfo]) -> None:
        await self.controller.load_balances()
        self.show_providers(providers)

    def show_top_apps(
        self,
        by_app: list[tuple[str, int]],
        month_nano: int,
        outlooks: dict[str, str] | None = None,
    ) -> None:
        """This month's largest spenders; under each, its burn rate of the last hour and
        run-out (or "used up, resets in …") unless it was idle."""
        outlooks = outlooks or {}
        while self.top_apps.count():
            item = self.top_apps.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        if not by_app:
            self.top_apps.addWidget(label("Nothing spent this month yet.", "muted"))
            return
        for name, nano in by_app[:5]:
            row = QWidget()
            lay = QVBoxLayout(row)
            lay.setContentsMargins(0, 0, 0, 2)
            lay.setSpacing(1)
            share = nano / month_nano if month_nano else 0.0  # a bar's length only
            lay.addWidget(rich_label(f"{html_text(name, 60)} · <b>{money(nano)}</b> · {share:.0%}"))
            outlook = outlooks.get(name, "idle")
            if outlook != "idle":
                lay.addWidget(label(outlook, "muted"))
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setValue(int(share * 1000))
            bar.setTextVisible(False)
            bar.setFixedHeight(6)
            lay.addWidget(bar)
            self.top_apps.addWidget(row)
        if len(by_app) > 5:
            rest = sum(n for _, n in by_app[5:])
            self.top_apps.addWidget(
                label(f"{plural(len(by_app) - 5, 'more app')} · {money(rest)}", "muted")
            )

    def show_overview(self, ov: Overview, providers: list[ProviderInfo]) -> None:
        self.wallet_budget = ov.wallet_budget.spec if ov.wallet_budget else None
        now = datetime.now(UTC)
        self.today.setText(money(ov.today_nano))
        self.today_note.setText(plural(ov.requests_today, "request"))
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
        outlook = budget_outlook(b, ov.burn_nano_per_hour, now)
        self.budget_outlook.setText(f"Last hour: {outlook}")
        self.show_providers(providers)
        # The controller's state, not the read's: a read begun before a resume must not
        # bring the paused notice back.
        self._show_paused(self.controller.paused)

    def show_providers(self, providers: list[ProviderInfo]) -> None:
        self.providers = providers
        if not providers:
            self.balances_list.setText(
                "No provider key yet. Add one under <b>Providers and keys</b>."
            )
            self.balances_note.hide()
            return
        balances = self.controller.balances
        reading = self.controller.solana
        lines = []
        for p in providers:
            kind = KINDS.get(p.kind)
            if kind is not None and kind.x402:  # paid in USDC from the Solana wallet
                line = f"<b>{html_text(p.name)}</b> · x402 router"
                credit = reading.credits.get(p.name) if reading is not None else None
                if p.prepaid and credit is not None:
                    line += f"<br>&nbsp;&nbsp;prepaid credit: <b>{html_text(credit.text)}</b>"
                elif p.prepaid:
                    line += "<br>&nbsp;&nbsp;prepaid: credit not read yet"
                else:
                    line += "<br>&nbsp;&nbsp;paid per request from the Solana wallet"
                lines.append(line)
                continue
            test = {True: "key works", False: "key FAILED its test", None: "not tested"}[
                p.last_test_ok
            ]
            line = f"<b>{html_text(p.name)}</b> · {test}"
            b = balances.get(p.name)
            if b is not None and b.problem:
                line += f"<br>&nbsp;&nbsp;balance unknown: {html_text(b.problem)}"
            elif b is not None and b.remaining_nano is not None:
                limit = f" of {money(b.limit_nano)}" if b.limit_nano is not None else ""
                line += f"<br>&nbsp;&nbsp;<b>{money(b.remaining_nano)}</b> credit left{limit}"
            elif b is not None:
                used = money(b.used_nano) if b.used_nano is not None else "unknown"
                line += f"<br>&nbsp;&nbsp;no credit limit on this key; used {used}"
            lines.append(line)
        self.balances_list.setText("<br>".join(lines))
        self.balances_note.setVisible(
            any(
                p.kind not in KINDS_WITH_BALANCE and not (p.kind in KINDS and KINDS[p.kind].x402)
                for p in providers
            )
        )

    def _show_engine(self) -> None:
        url = self.controller.url
        self.url.setText(url)
        for edit, snippet in zip(
            self._snippet_edits, (texts.OPENAI_SNIPPET, texts.ANTHROPIC_SNIPPET), strict=True
        ):
            edit.setPlainText(snippet.format(url=url))
        self.retry.setVisible(
            self.controller.engine is None and self.controller.engine_error is not None
        )
        if self.controller.engine is not None:
            self.engine_status.setText("The engine is running and listens on loopback only.")
        elif self.controller.engine_error:
            self.engine_status.setText(
                texts.ENGINE_FAILED.format(error=shown(self.controller.engine_error, 300))
            )
        else:
            self.engine_status.setText(texts.ENGINE_STARTING)

    def _retry(self) -> None:
        self.retry.hide()
        self.controller.engine_error = None
        self._show_engine()
        self.controller.spawn(self.controller.start_engine(), "Starting the engine")

    def _show_paused(self, paused: bool) -> None:
        self.banner.setVisible(paused)
        self.pause_button.setText(texts.RESUME_ALL if paused else texts.PAUSE_ALL)
        self.pause_button.setObjectName("primary" if paused else "danger")
        self.pause_button.style().unpolish(self.pause_button)
        self.pause_button.style().polish(self.pause_button)

    # -- actions ----------------------------------------------------------------------------
    def _toggle_pause(self) -> None:
        self.controller.spawn(self._set_paused(not self.controller.paused), "Pause switch")

    async def _set_paused(self, paused: bool) -> None:
        await self.controller.set_paused(paused)
        self._show_paused(paused)  # at once, not when the engine's event or a reload comes

    def _edit_budget(self) -> None:
        dialog = BudgetDialog("the wallet (all apps together)", self.wallet_budget, self)
        if dialog.exec():
            spec = dialog.spec
            wallet = self.controller.wallet
            self.controller.spawn(
                self.controller.run(wallet.set_budget, spec, None), "Setting the wallet budget"
            )


def _left(widget: QWidget) -> QHBoxLayout:
    """A button at its natural width, on the left."""
    row = QHBoxLayout()
    row.addWidget(widget)
    row.addStretch(1)
    return row
