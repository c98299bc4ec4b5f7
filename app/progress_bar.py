"""A progress bar that never paints in the middle of other work."""
from __future__ import annotations

from PySide6.QtWidgets import QProgressBar


class ProgressBar(QProgressBar):
    """QProgressBar.setValue repaints at once, and a repaint inside a window flushes everything else waiting to be
    painted there too: after a long recording's analysis that was 20-30 ms more inside the event that delivered
    it. Here a new value is drawn with the window's next paint, like any other change."""

    def setValue(self, value: int) -> None:  # noqa: N802 - Qt's name
        if not self.updatesEnabled():
            return super().setValue(value)
        self.setUpdatesEnabled(False)  # repaint() does nothing while updates are off
        try:
            super().setValue(value)
        finally:
            self.setUpdatesEnabled(True)  # schedules an ordinary update
