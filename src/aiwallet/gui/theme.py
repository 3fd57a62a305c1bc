"""Look: Fusion with a light or dark palette (the system's, or ``AIWALLET_THEME``), one
accent colour, and a small style sheet for cards and headings."""

from __future__ import annotations

import os
from importlib import resources

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import QApplication

ACCENT = "#2f7d6d"
ACCENT_DARK = "#4fb39d"
WARN = "#b7791f"
DANGER = "#c53030"
SERIES = (
    "#2f7d6d", "#d69e2e", "#3182ce", "#9f7aea", "#e53e3e",
    "#38a169", "#dd6b20", "#805ad5", "#319795", "#718096",
)  # fmt: skip


def is_dark() -> bool:
    choice = os.environ.get("AIWALLET_THEME", "").lower()
    if choice in ("dark", "light"):
        return choice == "dark"
    hints = QGuiApplication.styleHints()
    return hints.colorScheme() == Qt.ColorScheme.Dark


def _palette(dark: bool) -> QPalette:
    p = QPalette()
    if dark:
        base, window, text, mid = "#1e2326", "#171b1d", "#e6e9ea", "#2a3033"
        accent = ACCENT_DARK
    else:
        base, window, text, mid = "#ffffff", "#f3f5f6", "#1b2326", "#e2e7e9"
        accent = ACCENT
    roles = {
        QPalette.ColorRole.Window: window,
        QPalette.ColorRole.WindowText: text,
        QPalette.ColorRole.Base: base,
        QPalette.ColorRole.AlternateBase: mid,
        QPalette.ColorRole.Text: text,
        QPalette.ColorRole.Button: base if dark else "#ffffff",
        QPalette.ColorRole.ButtonText: text,
        QPalette.ColorRole.Highlight: accent,
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: base,
        QPalette.ColorRole.ToolTipText: text,
        QPalette.ColorRole.PlaceholderText: "#7b8a90",
        QPalette.ColorRole.Link: accent,
        QPalette.ColorRole.Mid: mid,
    }
    for role, colour in roles.items():
        p.setColor(role, QColor(colour))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#8a979c"))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#8a979c"))
    return p


def style_sheet(dark: bool) -> str:
    card = "#1e2326" if dark else "#ffffff"
    border = "#2c3438" if dark else "#dde3e6"
    muted = "#9aa7ac" if dark else "#5f6f75"
    accent = ACCENT_DARK if dark else ACCENT
    nav_sel = "#24302d" if dark else "#e3f0ec"
    words_bg = "#171b1d" if dark else "#f7f8f9"  # a caller's own words: set apart
    return f"""
    QFrame#card {{ background: {card}; border: 1px solid {border}; border-radius: 8px; }}
    QLabel#pageTitle {{ font-size: 20pt; font-weight: 600; }}
    QLabel#promptTitle {{ font-size: 15pt; font-weight: 600; }}
    QLabel#cardTitle {{ font-weight: 600; color: {muted}; }}
    QLabel#bigNumber {{ font-size: 20pt; font-weight: 600; }}
    QLabel#muted {{ color: {muted}; }}
    QLabel#banner {{ background: {DANGER}; color: white; padding: 8px 12px;
                     border-radius: 6px; font-weight: 600; }}
    QLabel#warning {{ background: {WARN}; color: white; padding: 8px 12px; border-radius: 6px; }}
    QListWidget#nav {{ border: none; background: transparent; font-size: 11pt; outline: 0; }}
    QListWidget#nav::item {{ padding: 9px 12px; border-radius: 6px; margin: 1px 6px; }}
    QListWidget#nav::item:selected {{ background: {nav_sel}; color: {accent}; font-weight: 600; }}
    QPushButton#primary {{ background: {accent}; color: white; border: none;
                          padding: 6px 14px; border-radius: 5px; font-weight: 600; }}
    QPushButton#primary:disabled {{ background: {border}; color: {muted}; }}
    QPushButton#danger {{ background: {DANGER}; color: white; border: none;
                         padding: 6px 14px; border-radius: 5px; font-weight: 600; }}
    QPlainTextEdit#callerWords {{ background: {words_bg}; border: 1px solid {border};
                                  border-left: 3px solid {WARN}; border-radius: 4px; }}
    QPlainTextEdit#code {{ font-family: "DejaVu Sans Mono", monospace; }}
    QLabel#mono {{ font-family: "DejaVu Sans Mono", monospace; }}
    QLabel#realMoney {{ background: {DANGER}; color: white; padding: 2px 8px;
                        border-radius: 4px; font-weight: 700; }}
    QLabel#testMoney {{ background: {border}; color: {muted}; padding: 2px 8px;
                        border-radius: 4px; font-weight: 600; }}
    """


def apply(app: QApplication) -> None:
    dark = is_dark()
    app.setStyle("Fusion")
    app.setPalette(_palette(dark))
    app.setStyleSheet(style_sheet(dark))
    app.setWindowIcon(app_icon())


def app_icon(paused: bool = False) -> QIcon:
    name = "aiwallet-paused" if paused else "aiwallet"
    base = resources.files("aiwallet.resources") / "icons"
    icon = QIcon(str(base / f"{name}.svg"))
    if icon.isNull():
        icon = QIcon(str(base / f"{name}-256.png"))
    return icon
