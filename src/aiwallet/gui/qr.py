"""A QR code of an address: segno's module matrix drawn into a pixmap, black on white
whatever the theme (scanners want dark modules on a light ground), with the standard
four-module quiet zone, each module a whole number of device pixels (crisp at any scale)."""

from __future__ import annotations

import segno
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap
from PySide6.QtWidgets import QLabel, QWidget

from aiwallet.gui.widgets import label, tooltip_text

QUIET = 4  # modules of white around the symbol (ISO/IEC 18004)
DARK = QColor("#000000")
LIGHT = QColor("#ffffff")


def qr_modules(text: str) -> list[list[bool]]:
    """The symbol's modules, quiet zone included (True: dark)."""
    code = segno.make(text, error="m", micro=False)
    matrix = [[bool(v) for v in row] for row in code.matrix]
    width = len(matrix) + 2 * QUIET
    blank = [False] * width
    rows = [list(blank) for _ in range(QUIET)]
    rows += [[False] * QUIET + row + [False] * QUIET for row in matrix]
    rows += [list(blank) for _ in range(QUIET)]
    return rows


def qr_pixmap(text: str, side: int, ratio: float = 1.0) -> QPixmap:
    """At most ``side`` logical pixels square, on a screen of device pixel ratio ``ratio``:
    every module the same whole number of device pixels (at least two)."""
    modules = qr_modules(text)
    count = len(modules)
    module = max(2, int(side * ratio) // count)
    size = module * count
    image = QImage(size, size, QImage.Format.Format_RGB32)
    image.fill(LIGHT)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
    for y, row in enumerate(modules):
        for x, dark in enumerate(row):
            if dark:
                painter.fillRect(QRect(x * module, y * module, module, module), DARK)
    painter.end()
    pixmap = QPixmap.fromImage(image)
    pixmap.setDevicePixelRatio(ratio)
    return pixmap


class QrCode(QWidget):
    """A QR code of ``text`` (an address), ``side`` logical pixels square at most."""

    def __init__(self, side: int = 168, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.side = side
        self.text = ""
        self.image: QLabel = label("", "qrCode")
        self.image.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setParent(self)
        self.setFixedSize(side, side)
        self.image.setGeometry(0, 0, side, side)

    def set_text(self, text: str) -> None:
        self.text = text
        if not text:
            self.image.clear()
            return
        self.image.setPixmap(qr_pixmap(text, self.side, self.devicePixelRatioF()))
        self.image.setToolTip(tooltip_text(f"QR code of {text}"))
