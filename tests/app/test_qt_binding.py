"""The Qt binding installed does not corrupt reference counts on Signal.disconnect (PySide6 6.12.0 did:
every disconnect, e.g. each pyqtgraph item removed from a plot, dropped a reference to True, and on
Python 3.11 a long session ended in "Fatal Python error: bool_dealloc")."""
import sys

import pytest
from PySide6.QtCore import QObject, Signal


class Sender(QObject):
    signal = Signal()


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="True is immortal from Python 3.12 on: its reference "
                    "count never changes, so the leak cannot show (nor harm)")
def test_disconnect_keeps_the_reference_count_of_true():
    sender = Sender()

    def slot():
        pass

    before = sys.getrefcount(True)
    for _ in range(200):
        sender.signal.connect(slot)
        sender.signal.disconnect(slot)
    assert sys.getrefcount(True) >= before  # 200 lower with the broken binding
