"""Render the wallet mark to the PNG, ICO and ICNS files the app bundles need.

    QT_QPA_PLATFORM=offscreen python scripts/build_icons.py

Reads ``src/aiwallet/resources/icons/aiwallet.svg`` (and ``aiwallet-paused.svg``) and writes:

* ``resources/aiwallet-{16,32,64,128,256,512,1024}.png``: the names Briefcase expects for
  ``icon = "resources/aiwallet"``;
* ``resources/aiwallet.ico`` (Windows) and ``resources/aiwallet.icns`` (macOS), with Pillow;
  skipped, with a note, when Pillow is not installed;
* ``src/aiwallet/resources/icons/aiwallet-256.png`` and ``aiwallet-paused-256.png``: the
  fallback the app uses where SVG cannot be loaded.

Rendering uses Qt's own SVG renderer (QtSvg), so the PNGs look like the app's tray icon.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRectF, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ROOT = Path(__file__).resolve().parent.parent
ICONS = ROOT / "src" / "aiwallet" / "resources" / "icons"
OUT = ROOT / "resources"
SIZES = (16, 32, 64, 128, 256, 512, 1024)
ICO_SIZES = (16, 32, 48, 64, 128, 256)


def render(svg: Path, size: int) -> QImage:
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg}: not a valid SVG for QtSvg")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    return image.convertToFormat(QImage.Format.Format_ARGB32)


def png_bytes(image: QImage) -> bytes:
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise SystemExit("Qt could not encode a PNG")
    buffer.close()
    return bytes(data.data())


def write_platform_icons(pngs: dict[int, bytes]) -> None:
    try:
        from PIL import Image
    except ImportError:
        print("Pillow is not installed: skipped aiwallet.ico and aiwallet.icns")
        return
    images = {size: Image.open(io.BytesIO(data)).convert("RGBA") for size, data in pngs.items()}
    largest = images[max(images)]
    ico = [images.get(s) or largest.resize((s, s), Image.Resampling.LANCZOS) for s in ICO_SIZES]
    ico[-1].save(
        OUT / "aiwallet.ico",
        format="ICO",
        sizes=[(s, s) for s in ICO_SIZES],
        append_images=ico[:-1],
    )
    icns = [images[s] for s in SIZES]
    largest.save(OUT / "aiwallet.icns", format="ICNS", append_images=icns[:-1])
    print(f"wrote {OUT / 'aiwallet.ico'} and {OUT / 'aiwallet.icns'}")


def main() -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    OUT.mkdir(exist_ok=True)
    pngs: dict[int, bytes] = {}
    for size in SIZES:
        pngs[size] = png_bytes(render(ICONS / "aiwallet.svg", size))
        (OUT / f"aiwallet-{size}.png").write_bytes(pngs[size])
    (ICONS / "aiwallet-256.png").write_bytes(pngs[256])
    (ICONS / "aiwallet-paused-256.png").write_bytes(
        png_bytes(render(ICONS / "aiwallet-paused.svg", 256))
    )
    print(f"wrote {len(SIZES)} PNGs to {OUT} and the 256 px fallbacks to {ICONS}")
    write_platform_icons(pngs)
    del app


if __name__ == "__main__":
    main()
