"""The tray icon: today's spend in the tooltip; a menu built each time it opens (open, pause
all AI spending / resume, recent prompts, quit). Optional: without a system tray the main
window opens instead and prompts still appear."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from aiwallet.gui import texts, theme
from aiwallet.gui.controller import Controller
from aiwallet.gui.widgets import menu_text, money


class Tray(QSystemTrayIcon):
    def __init__(
        self,
        controller: Controller,
        *,
        open_window: Callable[[], None],
        show_prompt: Callable[[str], None],
        quit_app: Callable[[], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(theme.app_icon(), parent)
        self.controller = controller
        self._open, self._show_prompt, self._quit = open_window, show_prompt, quit_app
        self.menu = QMenu(parent)
        self.menu.aboutToShow.connect(self.build_menu)
        self.setContextMenu(self.menu)
        self.activated.connect(self._activated)
        controller.paused_changed.connect(self._paused)
        controller.totals_changed.connect(self.update_tooltip)
        self.update_tooltip()

    def _action(self, text: str, parent: QMenu, slot: Callable[[], None]) -> QAction:
        action = QAction(text, parent)
        action.triggered.connect(slot)
        return action

    def build_menu(self) -> None:
        """Fresh on every opening, so it never shows stale state; every action parented."""
        m = self.menu
        m.clear()
        m.addAction(self._action("Open aiwallet", m, self._open))
        paused = self.controller.paused
        m.addAction(
            self._action(
                texts.RESUME_ALL if paused else texts.PAUSE_ALL,
                m,
                lambda: self.toggle_pause(not paused),
            )
        )
        recent = m.addMenu("Recent prompts")
        if not self.controller.recent_prompts:
            empty = QAction("No prompts yet", recent)
            empty.setEnabled(False)
            recent.addAction(empty)
        for item in self.controller.recent_prompts:
            text = f"{menu_text(item.get('app_name'), 48)} — {menu_text(item.get('outcome'), 20)}"
            action = QAction(text, recent)
            if item.get("outcome") == "pending":
                action.triggered.connect(lambda _=False, rid=item["id"]: self._show_prompt(rid))
            else:
                action.setEnabled(False)
            recent.addAction(action)
        m.addSeparator()
        m.addAction(self._action("Quit", m, self._quit))

    def toggle_pause(self, paused: bool) -> None:
        self.controller.spawn(self.controller.set_paused(paused), "Pause switch")

    def update_tooltip(self) -> None:
        state = " · PAUSED" if self.controller.paused else ""
        self.setToolTip(f"aiwallet — today {money(self.controller.today_nano)}{state}")

    def _paused(self, paused: bool) -> None:
        self.setIcon(theme.app_icon(paused))
        self.update_tooltip()

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (
            QSystemTrayIcon.ActivationReason.Trigger,
            QSystemTrayIcon.ActivationReason.DoubleClick,
        ):
            self._open()
