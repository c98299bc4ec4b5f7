"""Steering the current recording's automatic segmentation, from the Edit menu and the plots' right-click menu:
"Shift cycles to start at the other phase" where the cycles start at expiration, and "Segment again with this
breath period…" where the rhythm found is wrong. Each is one undoable edit on the recording's CycleDocument, its
new cycles predicted as any edited cycle is; segmenting again runs in the engine. Only automatic cycles are
steered: on an annotated recording the actions say why they are disabled."""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from lungkd.core.analysis.breath_rhythm import USUAL_PERIOD_S
from lungkd.core.analysis.segmentation import check_period_hint
from lungkd.core.errors import LungKDError
from lungkd.core.text import printable

from ..recordings.cycle_document import CycleDocument
from ..recordings.page import RecordingsPage
from ..recordings.session import Session
from ..theme import MISMATCH

SHIFT_TIP = ("For cycles that start at expiration: start every cycle at the other breathing phase the segmentation "
             "found (undoable)")
AGAIN_TIP = "Find the cycles again at the breathing period you give, from one inspiration to the next (undoable)"


def not_steerable(document: CycleDocument | None) -> str:
    """Why the recording's cycles cannot be shifted or segmented again; "" where they can."""
    if document is not None and document.segmentation is None and document.source == "annotation":
        return (f"These cycles come from the annotation beside the recording ({document.annotation_path.name}): "
                "only cycles the automatic segmentation found are shifted or segmented again.")
    if document is None or document.segmentation is None:
        return "No automatic cycles: they are found when a model analyses a recording without an annotation."
    return ""


def not_shiftable(document: CycleDocument | None) -> str:
    """Why the cycles cannot start at the other phase (in the engine's words where it found none); "" where
    they can."""
    return not_steerable(document) or document.shift_problem()


class BreathPeriodDialog(QDialog):
    """Asks for the breathing period, proposing `period`. A period the segmentation does not look for is refused
    in the engine's words, and the dialog stays open to correct it."""

    chosen = Signal(float)

    def __init__(self, name: str, period: float, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Segment again")
        self.period = QLineEdit(f"{period:.2f}")
        self.period.selectAll()
        self.problem = QLabel(textFormat=Qt.TextFormat.PlainText, wordWrap=True, visible=False)
        self.problem.setStyleSheet(f"color: {MISMATCH.name()}")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("Segment again")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        field = QHBoxLayout()
        field.addWidget(self.period)
        field.addWidget(QLabel("s"))
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(printable(f"The breathing period of {name}: the time from one inspiration to the "
                                          "next. Its cycles are found again at this period."),
                                textFormat=Qt.TextFormat.PlainText, wordWrap=True))
        layout.addLayout(field)
        layout.addWidget(self.problem)
        layout.addWidget(buttons)
        self.setFixedWidth(440)
        self.adjustSize()

    def accept(self) -> None:
        text = self.period.text().strip()
        try:
            period = float(text.replace(",", "."))
            check_period_hint(period)
        except ValueError:
            self._refuse(f"“{text}” is not a number of seconds. Fix: give the breathing period as a number, "
                         "e.g. 3.5.")
            return
        except LungKDError as exc:
            self._refuse(str(exc))
            return
        super().accept()
        self.chosen.emit(period)

    def _refuse(self, message: str) -> None:
        self.problem.setText(printable(message))
        self.problem.setVisible(True)
        self.adjustSize()  # as tall as the wrapped message
        self.period.setFocus()
        self.period.selectAll()


class SegmentationActions(QObject):
    """The two actions on the session's current recording; AnnotationActions puts them in its menus."""

    def __init__(self, session: Session, page: RecordingsPage, window: QWidget):
        super().__init__(window)
        self.session = session
        self.window = window
        self.dialog: BreathPeriodDialog | None = None  # the last one asked, until the next
        self.shift = QAction("S&hift cycles to start at the other phase", self)
        self.shift.triggered.connect(self.shift_cycles)
        self.again = QAction("Segment a&gain with this breath period…", self)
        self.again.triggered.connect(self.ask_period)
        page.selection_changed.connect(self.update)
        session.documents_changed.connect(self.update)
        self.update()

    def actions(self) -> list[QAction]:
        return [self.shift, self.again]

    def update(self) -> None:
        document = self.session.current_document_or_none()
        for action, why, tip in ((self.shift, not_shiftable(document), SHIFT_TIP),
                                 (self.again, not_steerable(document), AGAIN_TIP)):
            action.setEnabled(not why)
            action.setToolTip(printable(why or tip))  # shown in the menus even while disabled: says why
            action.setStatusTip(printable(why or tip))

    def shift_cycles(self) -> None:
        document = self.session.current_document_or_none()
        if document.shift_to_other_phase():
            phase = "the other phase" if document.segmentation.shifted else "the phase the segmentation chose"
            self.session.status.emit(printable(f"The cycles of {document.name} start at {phase} now; Ctrl+Z undoes "
                                               "it."))

    def ask_period(self) -> None:
        """The period dialog (window-modal, but opened without blocking: the engine keeps working); the period
        chosen goes to the engine."""
        document = self.session.current_document_or_none()
        if self.dialog is not None:
            self.dialog.deleteLater()
        self.dialog = BreathPeriodDialog(document.name, document.segmentation.period or USUAL_PERIOD_S, self.window)
        self.dialog.chosen.connect(lambda period: self.session.segment_again(document, period))
        self.dialog.open()
