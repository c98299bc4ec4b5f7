"""The Studio's progress bars paint with the window's next paint, not inside the call that moves them."""
from PySide6.QtWidgets import QProgressBar

from lungkd.app.progress_bar import ProgressBar


def painted_values(cls):
    class Watched(cls):
        def __init__(self):
            super().__init__()
            self.painted: list[int] = []

        def paintEvent(self, event):  # noqa: N802 - Qt's name
            self.painted.append(self.value())
            super().paintEvent(event)
    return Watched()


def test_a_new_value_is_painted_with_the_next_paint_not_at_once(qtbot):
    bars = {cls: painted_values(cls) for cls in (QProgressBar, ProgressBar)}
    for bar in bars.values():
        qtbot.addWidget(bar)
        bar.setRange(0, 100)
        bar.show()
        qtbot.waitExposed(bar)
        qtbot.wait(20)
        bar.painted.clear()
        bar.setValue(50)
    assert bars[QProgressBar].painted == [50]  # Qt's own paints inside setValue: what the Studio avoids
    assert bars[ProgressBar].painted == []
    qtbot.waitUntil(lambda: bars[ProgressBar].painted == [50], timeout=2000)
    assert bars[ProgressBar].value() == 50 and bars[ProgressBar].updatesEnabled()
