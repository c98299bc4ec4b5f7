"""The cycle table: one row per cycle with its prediction, the four probabilities, the annotation and the
cycle's distance from the model's training data; a prediction not to be trusted (the cycle or its recording
unlike the training data) is greyed."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from lungkd.core.analysis.predict import RecordingAnalysis
from lungkd.core.labels import CLASS_NAMES

from .theme import CLASS_COLOURS, DOUBTED, MISMATCH, class_colour, translucent

COLUMNS = ("#", "start (s)", "end (s)", "prediction", *CLASS_NAMES, "annotated", "match", "training data")
FIRST_PROBABILITY = COLUMNS.index(CLASS_NAMES[0])
MATCH, TRAINING = COLUMNS.index("match"), COLUMNS.index("training data")


def likeness(cycle, limit: float | None) -> str:
    """The cycle's distance from the model's training data in words ('' when the model cannot tell)."""
    if cycle.training_distance is None:
        return ""
    return f"{'unlike' if cycle.unlike_training else 'like'} · {cycle.training_distance:.1f} (limit {limit:.1f})"


class CycleTable(QTableWidget):
    cycle_selected = Signal(int)
    cycle_activated = Signal(int)  # double click or Enter: play it

    def __init__(self, parent=None):
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(COLUMNS)
        for name in CLASS_NAMES:
            header = self.horizontalHeaderItem(COLUMNS.index(name))
            header.setForeground(CLASS_COLOURS[name].darker(140))
            header.setToolTip(f"probability of {name}")
        self.horizontalHeaderItem(TRAINING).setToolTip(
            "how far the cycle's sound is from the model's training data; beyond the limit it is unlike it, and "
            "the prediction (greyed) is not to be trusted")
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(24)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        for column in (0, TRAINING):
            self.horizontalHeader().setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.setAlternatingRowColors(False)
        self.itemSelectionChanged.connect(self._selection_changed)
        self.cellDoubleClicked.connect(lambda row, _: self.cycle_activated.emit(row))

    def show_analysis(self, analysis: RecordingAnalysis | None) -> None:
        self.blockSignals(True)
        self.clearSelection()
        cycles = analysis.cycles if analysis else []
        self.setRowCount(len(cycles))
        for row, c in enumerate(cycles):
            predicted = CLASS_NAMES[c.predicted]
            mismatch = c.matches is False
            doubted = analysis.doubted(c)
            values = (str(row + 1), f"{c.start:.3f}", f"{c.end:.3f}", f"{predicted} {c.confidence:.0%}",
                      *(f"{p:.3f}" for p in c.probabilities), "" if c.truth is None else CLASS_NAMES[c.truth],
                      "" if c.matches is None else ("✓" if c.matches else "✗ mismatch"),
                      likeness(c, analysis.distance_limit))
            for column, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.setItem(row, column, item)
            # a heat map of the prediction and the probabilities, the stronger the colour the likelier; grey when
            # the sound is unlike the training data
            colour = (lambda k: DOUBTED) if doubted else class_colour
            self.item(row, 3).setBackground(QBrush(translucent(colour(c.predicted), 70)))
            for k, p in enumerate(c.probabilities):
                self.item(row, FIRST_PROBABILITY + k).setBackground(QBrush(translucent(colour(k), int(150 * p))))
            if doubted:
                for column in (3, *range(FIRST_PROBABILITY, FIRST_PROBABILITY + len(CLASS_NAMES)), TRAINING):
                    self.item(row, column).setForeground(DOUBTED)
                self.item(row, 3).setToolTip("unlike the model's training data: not to be trusted")
            if c.truth is not None:
                self.item(row, COLUMNS.index("annotated")).setBackground(
                    QBrush(translucent(class_colour(c.truth), 70)))
            if mismatch:
                self.item(row, MATCH).setForeground(MISMATCH)
        self.blockSignals(False)

    def select_cycle(self, index: int) -> None:
        if 0 <= index < self.rowCount() and self.current_cycle() != index:
            self.selectRow(index)
            self.scrollToItem(self.item(index, 0))

    def current_cycle(self) -> int | None:
        rows = self.selectionModel().selectedRows()
        return rows[0].row() if rows else None

    def _selection_changed(self) -> None:
        index = self.current_cycle()
        if index is not None:
            self.cycle_selected.emit(index)

    def keyPressEvent(self, event) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.current_cycle() is not None:
            self.cycle_activated.emit(self.current_cycle())
            return
        super().keyPressEvent(event)
