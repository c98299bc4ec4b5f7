"""Class colours shared by every view: the same class is the same colour everywhere."""
from PySide6.QtGui import QColor

CLASS_COLOURS = {
    "normal": QColor(96, 160, 96),
    "crackle": QColor(230, 140, 30),
    "wheeze": QColor(50, 110, 210),
    "both": QColor(150, 70, 190),
}
MISMATCH = QColor(210, 40, 40)


def translucent(colour: QColor, alpha: int) -> QColor:
    c = QColor(colour)
    c.setAlpha(alpha)
    return c
