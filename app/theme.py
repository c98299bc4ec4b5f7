"""Colours and the style sheet shared by every view: the same class is the same colour everywhere."""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtGui import QColor, QIcon

from lungkd.core.labels import CLASS_NAMES

CLASS_COLOURS = {
    "normal": QColor(104, 160, 104),
    "crackle": QColor(232, 136, 28),
    "wheeze": QColor(46, 110, 214),
    "both": QColor(148, 72, 190),
}
MISMATCH = QColor(214, 39, 40)
EDITED = QColor(196, 120, 0)  # unsaved edits
DOUBTED = QColor(150, 152, 156)  # a prediction on a cycle unlike the model's training data
NOTICE = QColor(138, 90, 0)  # what a user must know about the model or the recording
INK = QColor(40, 44, 52)
MUTED = QColor(110, 116, 126)
PLOT_BACKGROUND = QColor(252, 252, 253)

COLOUR_MAPS = ("viridis", "magma", "inferno", "turbo", "greyscale")

STYLE_SHEET = """
QMainWindow, QWidget#page { background: #f4f5f7; }
QListWidget, QTableWidget { background: white; border: 1px solid #d9dce1; border-radius: 4px; }
QListWidget::item:selected { background: #dbe6fb; }
QListWidget::item:hover:!selected { background: #f0f3f8; }
QTableWidget { gridline-color: #eceef1; selection-background-color: #dbe6fb; selection-color: #1d2330; }
QHeaderView::section { background: #eef0f3; border: none; border-bottom: 1px solid #d9dce1; padding: 4px 6px;
                       font-weight: 600; color: #3a404b; }
QLabel#readout { color: #3a404b; font-family: monospace; padding: 2px 6px; }
QLabel#heading { font-weight: 600; color: #3a404b; padding: 4px 2px; }
QLabel#hint { color: #6e747e; }
QLabel#reason { color: #1d2330; }
QWidget#editBar, QWidget#reviewBar { background: #eef0f3; border-radius: 4px; }
QWidget#reviewBar { background: #fff4dc; }
QLabel#notice { background: #fff4d6; border: 1px solid #e8c76a; border-radius: 4px; color: #5c4300; padding: 4px 8px; }
QLabel#model_notes { color: #3a404b; padding: 0 4px; }
QToolBar { spacing: 6px; border: none; background: #eef0f3; padding: 3px; }
QStatusBar { background: #eef0f3; }
"""


def class_colour(label: int) -> QColor:
    return CLASS_COLOURS[CLASS_NAMES[label]]


def translucent(colour: QColor, alpha: int) -> QColor:
    c = QColor(colour)
    c.setAlpha(alpha)
    return c


def colour_map(name: str) -> pg.ColorMap:
    if name == "greyscale":
        return pg.ColorMap(pos=[0.0, 1.0], color=[(0, 0, 0), (255, 255, 255)])
    return pg.colormap.get(name)


def application_icon() -> QIcon:
    """The LungKD icon at every size rendered from resources/icons/lungkd.svg (packaging/render_icons.py)."""
    icon = QIcon()
    for png in Path(str(files("lungkd.resources") / "icons")).glob("lungkd-*.png"):
        icon.addFile(str(png))
    return icon
