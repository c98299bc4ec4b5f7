"""Render the application icon (resources/icons/lungkd.svg) to the PNG sizes desktops ask for.

    .venv/bin/python packaging/render_icons.py

Qt's own SVG renderer draws them offscreen, so no other tool is needed. Run it after editing the SVG and
commit the PNGs: the Studio's window icon and the bundle use them, and packaging/README.md says how to
install them into a desktop's icon theme.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication, QImage, QPainter  # noqa: E402
from PySide6.QtSvg import QSvgRenderer  # noqa: E402

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def render(svg: Path, size: int) -> QImage:
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg}: not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    return image


def main() -> int:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841  (QImage needs one)
    svg = ICONS / "lungkd.svg"
    for size in SIZES:
        path = ICONS / f"lungkd-{size}.png"
        if not render(svg, size).save(str(path)):
            raise SystemExit(f"could not write {path}")
        print(f"{path.relative_to(ICONS.parents[1])}  {size}x{size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
