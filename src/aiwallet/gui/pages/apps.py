"""Apps: every app with its grant and budget (used / left, reset), and every remembered
consent decision (deny included), each editable or revocable."""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableView,
    QWidget,
)

from aiwallet.domain.windows import describe_until
from aiwallet.gui.controller import Controller
from aiwallet.gui.dialogs import BudgetDialog, KeyShownDialog, NewAppDialog
from aiwallet.gui.pages.base import Page
from aiwallet.gui.widgets import (
    PROGRESS_ROLE,
    Card,
    ProgressDelegate,
    ask,
    money,
    money_short,
    shown,
    tooltip_text,
    when,
)
from aiwallet.summaries import AppSummary, app_summaries, budget_outlook

if TYPE_CHECKING:
    from aiwallet.store.consent import ConsentRule

Index = QModelIndex | QPersistentModelIndex
SORT_ROLE = Qt.ItemDataRole.UserRole + 2


class AppCol(enum.IntEnum):
    NAME = 0
    STATUS = 1
    BUDGET = 2
    USED = 3
    LEFT = 4
    OUTLOOK = 5
    RESETS = 6
    LAST_USE = 7
    MODELS = 8


APP_HEADERS = (
    "App",
    "Status",
    "Budget",
    "Used",
    "Left",
    "Last hour · outlook",
    "Resets",
    "Last use",
    "Models",
)


class AppsModel(QAbstractTableModel):
    def __init__(self) -> None:
        super().__init__()
        self.apps: list[AppSummary] = []
        self.now = datetime.now(UTC)

    def set_apps(self, apps: list[AppSummary]) -> None:
        self.beginResetModel()
        self.apps, self.now = apps, datetime.now(UTC)
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.apps)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return len(AppCol)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return APP_HEADERS[section]
        return None

    def data(self, index: Index, role: int = 0) -> Any:
        if not index.isValid():
            return None
        app, col = self.apps[index.row()], AppCol(index.column())
        b = app.budget
        if role == PROGRESS_ROLE and col is AppCol.USED and b is not None:
            return min(int(b.used_fraction * 1000), 1000)
        if role == SORT_ROLE:
            if col is AppCol.USED:
                return b.used_fraction if b else -1.0
            if col is AppCol.LEFT:
                return b.remaining_nano if b else -1
            if col is AppCol.LAST_USE:
                return app.last_used_at.timestamp() if app.last_used_at else 0.0
            if col is AppCol.OUTLOOK:
                return app.burn_nano_per_hour
            role = Qt.ItemDataRole.DisplayRole
        if role == Qt.ItemDataRole.ToolTipRole and col is AppCol.NAME:
            return tooltip_text(
                f"{app.name} · key {app.key_prefix}… · total spent {money(app.spent_total_nano)}"
            )
        if role == Qt.ItemDataRole.ToolTipRole and col is AppCol.MODELS and app.models:
            return tooltip_text(", ".join(app.models))
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if col is AppCol.NAME:
            return shown(app.name)
        if col is AppCol.STATUS:
            return app.status
        if col is AppCol.BUDGET:
            return b.spec.describe() if b else "none"
        if col is AppCol.USED:
            return f"{money_short(b.spent_nano)} · {b.used_fraction:.0%}" if b else "–"
        if col is AppCol.LEFT:
            return money(b.remaining_nano) if b else "–"
        if col is AppCol.OUTLOOK:
            return budget_outlook(b, app.burn_nano_per_hour, self.now)
        if col is AppCol.RESETS:
            return describe_until(self.now, b.reset_at).removeprefix("resets ") if b else "–"
        if col is AppCol.LAST_USE:
            return when(app.last_used_at, self.now)
        return shown(", ".join(app.models))


class RuleCol(enum.IntEnum):
    SUBJECT = 0
    DECISION = 1
    APP = 2
    SINCE = 3
    EXPIRES = 4


RULE_HEADERS = ("Program or app", "Decision", "App", "Since", "Expires")


class RulesModel(QAbstractTableModel):
    def __init__(self) -> None:
        super().__init__()
        self.rules: list[ConsentRule] = []
        self.app_names: dict[int, str] = {}

    def set_rules(self, rules: list[ConsentRule], app_names: dict[int, str]) -> None:
        self.beginResetModel()
        self.rules, self.app_names = rules, app_names
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rules)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return len(RuleCol)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return RULE_HEADERS[section]
        return None

    def data(self, index: Index, role: int = 0) -> Any:
        if not index.isValid() or role not in (
            Qt.ItemDataRole.DisplayRole,
            SORT_ROLE,
            Qt.ItemDataRole.ToolTipRole,
        ):
            return None
        r, col = self.rules[index.row()], RuleCol(index.column())
        if role == Qt.ItemDataRole.ToolTipRole:
            return tooltip_text(r.subject) if col is RuleCol.SUBJECT else None
        if col is RuleCol.SUBJECT:
            return r.subject if role == SORT_ROLE else _short(r.subject)
        if col is RuleCol.DECISION:
            return "always allow" if r.decision == "allow" else "always deny"
        if col is RuleCol.APP:
            return shown(self.app_names.get(r.app_id, "–")) if r.app_id is not None else "–"
        if col is RuleCol.SINCE:
            return when(r.created_at)
        return when(r.expires_at) if r.expires_at else "never"


def _short(subject: str) -> str:
    """A program's path or an app's name, its end kept (a path's file name)."""
    text = shown(subject, None)
    return text if len(text) < 60 else "…" + text[-58:]


def _table(model: QAbstractTableModel) -> tuple[QTableView, QSortFilterProxyModel]:
    proxy = QSortFilterProxyModel()
    proxy.setSourceModel(model)
    proxy.setSortRole(SORT_ROLE)
    view = QTableView()
    view.setModel(proxy)
    view.setSortingEnabled(True)
    view.sortByColumn(0, Qt.SortOrder.AscendingOrder)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setAlternatingRowColors(True)
    view.verticalHeader().hide()
    view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    view.horizontalHeader().setStretchLastSection(True)
    return view, proxy


class AppsPage(Page):
    title = "Apps"

    def __init__(self, controller: Controller, parent: QWidget | None = None) -> None:
        super().__init__(controller, parent)
        new = QPushButton("New app…")
        new.setObjectName("primary")
        new.clicked.connect(self._new_app)
        self.header.addWidget(new)

        apps_card = Card("Apps and their budgets")
        self.model = AppsModel()
        self.view, self.proxy = _table(self.model)
        self.view.setItemDelegateForColumn(AppCol.USED, ProgressDelegate(self.view))
        self.view.selectionModel().selectionChanged.connect(self._selection_changed)
        self.view.doubleClicked.connect(lambda _index: self._edit_budget())
        apps_card.body.addWidget(self.view)
        actions = QHBoxLayout()
        self.edit_budget = QPushButton("Edit budget…")
        self.pause = QPushButton("Pause")
        self.revoke = QPushButton("Revoke…")
        for button, slot in (
            (self.edit_budget, self._edit_budget),
            (self.pause, self._toggle_pause),
            (self.revoke, self._revoke),
        ):
            button.clicked.connect(slot)
            actions.addWidget(button)
        actions.addStretch(1)
        apps_card.body.addLayout(actions)
        self.body.addWidget(apps_card, 3)

        rules_card = Card("Remembered decisions (allow and deny)")
        self.rules = RulesModel()
        self.rules_view, self.rules_proxy = _table(self.rules)
        self.rules_view.selectionModel().selectionChanged.connect(self._selection_changed)
        rules_card.body.addWidget(self.rules_view)
        rules_actions = QHBoxLayout()
        self.forget = QPushButton("Forget decision")
        self.forget.clicked.connect(self._forget)
        rules_actions.addWidget(self.forget)
        rules_actions.addStretch(1)
        rules_card.body.addLayout(rules_actions)
        self.body.addWidget(rules_card, 2)
        self._selection_changed()

    async def refresh(self) -> None:
        wallet = self.controller.wallet
        apps, rules, names = await self.controller.run(
            lambda: (app_summaries(wallet), wallet.consent_rules.list(), wallet.reports.app_names())
        )
        selected = self.selected_app()
        self.model.set_apps(apps)
        # The models take what room is left (their full list in a tooltip), so the table
        # fits the page without a horizontal scroll bar. (A mode is kept only for a section
        # that exists: set once there are columns.)
        header = self.view.horizontalHeader()
        if header.count() > AppCol.MODELS:
            header.setSectionResizeMode(AppCol.MODELS, QHeaderView.ResizeMode.Stretch)
        self.rules.set_rules(rules, names)
        if selected is not None:
            self.select_app(selected.name)
        self._selection_changed()

    # -- selection -------------------------------------------------------------------------------
    def selected_app(self) -> AppSummary | None:
        rows = self.view.selectionModel().selectedRows()
        if not rows:
            return None
        return self.model.apps[self.proxy.mapToSource(rows[0]).row()]

    def select_app(self, name: str) -> None:
        for row, app in enumerate(self.model.apps):
            if app.name == name:
                self.view.selectRow(self.proxy.mapFromSource(self.model.index(row, 0)).row())
                return

    def selected_rule(self) -> ConsentRule | None:
        rows = self.rules_view.selectionModel().selectedRows()
        if not rows:
            return None
        return self.rules.rules[self.rules_proxy.mapToSource(rows[0]).row()]

    def _selection_changed(self, *_: object) -> None:
        app = self.selected_app()
        live = app is not None and app.status != "revoked"
        for button in (self.edit_budget, self.pause, self.revoke):
            button.setEnabled(live)
        self.pause.setText("Resume" if app is not None and app.status == "paused" else "Pause")
        self.forget.setEnabled(self.selected_rule() is not None)

    # -- actions ------------------------------------------------------------------------------
    def _new_app(self) -> None:
        dialog = NewAppDialog(self)
        if not dialog.exec():
            return
        seconds = dialog.lifetime.currentData()
        expires = datetime.now(UTC) + timedelta(seconds=seconds) if seconds else None
        self.controller.spawn(
            self._create(dialog.name.text().strip(), dialog.spec, dialog.scopes(), expires),
            "Creating the app",
        )

    async def _create(
        self, name: str, spec: Any, scopes: list[str], expires: datetime | None
    ) -> None:
        wallet = self.controller.wallet
        app, key = await self.controller.run(
            wallet.create_app, name, budget=spec, models=scopes, expires_at=expires
        )
        KeyShownDialog(app.name, key, self.controller.url, self).exec()
        self.controller.mark_dirty()

    def _edit_budget(self) -> None:
        app = self.selected_app()
        if app is None:
            return
        dialog = BudgetDialog(app.name, app.budget.spec if app.budget else None, self)
        if dialog.exec():
            wallet = self.controller.wallet
            self.controller.spawn(
                self.controller.run(wallet.set_budget, dialog.spec, app.name), "Setting the budget"
            )

    def _toggle_pause(self) -> None:
        app = self.selected_app()
        if app is None:
            return
        wallet = self.controller.wallet
        self.controller.spawn(
            self.controller.run(wallet.set_app_paused, app.name, app.status != "paused"),
            "Pausing the app",
        )

    def _revoke(self) -> None:
        app = self.selected_app()
        if app is None:
            return
        if ask(
            self,
            "Revoke app",
            f"Revoke {shown(app.name)}? Its key stops working at once; this cannot be undone.",
        ):
            wallet = self.controller.wallet
            self.controller.spawn(
                self.controller.run(wallet.revoke_app, app.name), "Revoking the app"
            )

    def _forget(self) -> None:
        rule = self.selected_rule()
        if rule is None:
            return
        wallet = self.controller.wallet
        self.controller.spawn(
            self.controller.run(wallet.revoke_consent_rule, rule.id), "Forgetting the decision"
        )
