"""The cycle table: one row per cycle with its prediction, the four probabilities, the annotated class
(double click it, or F2, to choose another) and the cycle's distance from the model's training data; a
prediction not to be trusted (the cycle or its recording unlike the training data) is greyed. Where an
experiment's teachers voted, each teacher's vote and their ensemble's probabilities stand beside the
student's. The last column is the cycle's recording quality, its reasons in the tooltip; a prediction on a poor
cycle is set in italics and says so. Rows select with the plot; several can be selected for accepting the
model's classes or setting one class at once."""
from __future__ import annotations

from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtGui import QBrush
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHeaderView, QStyledItemDelegate, QStyleOptionViewItem,
                               QTableWidget, QTableWidgetItem)

from lungkd.core.analysis.quality import POOR, WARNING
from lungkd.core.analysis.review import teacher_votes
from lungkd.core.kd.soft_labels import ensemble_probabilities
from lungkd.core.labels import CLASS_NAMES

from ..theme import CLASS_COLOURS, DOUBTED, MISMATCH, MUTED, class_colour, translucent
from .cycle_document import ShownCycle
from .quality_marks import POOR_WORDS, quality_colour, reasons_html
from .words import OUTSIDE

COLUMNS = ("#", "start (s)", "end (s)", "prediction", *CLASS_NAMES, "annotated", "match", "training data", "quality")
ENSEMBLE = "ens.\n{}"  # the teachers' ensemble; short, two lines: beside the teachers the table has no room left
TEACHER_COLUMNS = ("teachers", *(ENSEMBLE.format(name) for name in CLASS_NAMES))
PROBABILITY_COLUMNS = set(CLASS_NAMES)  # share the width; the others take what they need
FIRST_PROBABILITY = COLUMNS.index(CLASS_NAMES[0])
ANNOTATED, MATCH, TRAINING = COLUMNS.index("annotated"), COLUMNS.index("match"), COLUMNS.index("training data")
QUALITY = COLUMNS.index("quality")
ROWS_AT_ONCE = 32  # written in one turn of the event loop: more (an hour's rows at first) are written over several


def likeness(cycle: ShownCycle, limit: float | None) -> str:
    """The cycle's distance from the model's training data in words ('' when the model cannot tell)."""
    if cycle.training_distance is None or limit is None:
        return ""
    return f"{'outside' if cycle.unlike_training else 'inside'} · {cycle.training_distance:.1f} (limit {limit:.1f})"


class RowNumberDelegate(QStyledItemDelegate):
    """The "#" column: each row's number, worked out as it is drawn, so a split or merge numbers no row again."""

    def initStyleOption(self, option: QStyleOptionViewItem, index) -> None:
        super().initStyleOption(option, index)
        option.text = str(index.row() + 1)
        option.features |= QStyleOptionViewItem.ViewItemFeature.HasDisplay
        option.displayAlignment = Qt.AlignmentFlag.AlignCenter


class ClassDelegate(QStyledItemDelegate):
    """A class chooser in the annotated column; the choice goes to the document, which redraws the table."""

    def __init__(self, table: "CycleTable"):
        super().__init__(table)
        self.table = table

    def createEditor(self, parent, option, index):
        combo = QComboBox(parent)
        combo.addItems(CLASS_NAMES)
        combo.activated.connect(lambda _: (self.commitData.emit(combo), self.closeEditor.emit(combo)))
        return combo

    def setEditorData(self, editor, index) -> None:
        editor.setCurrentIndex(max(0, editor.findText(index.data())))  # "no class" offers normal first

    def setModelData(self, editor, model, index) -> None:
        row, label = index.row(), editor.currentIndex()
        QTimer.singleShot(0, lambda: self.table.label_chosen.emit(row, label))  # after the editor has closed


class CycleTable(QTableWidget):
    cycle_selected = Signal(int)
    cycle_activated = Signal(int)  # double click or Enter: play it
    label_chosen = Signal(int, int)  # row, class chosen in the annotated column

    def __init__(self, parent=None):
        super().__init__(0, len(COLUMNS), parent)
        # what each row shows: (cycle, teachers' votes, distance limit); None while it is still to be written
        self._shown_rows: list[tuple | None] = []
        self._wanted_rows: list[tuple] = []  # what each row is to show
        self._pending_rows: list[int] = []  # the rows still to write, those in view first
        self._pending_timer = QTimer(self, singleShot=True, interval=0)
        self._pending_timer.timeout.connect(self._write_pending)
        self._with_teachers = False
        self._set_columns(False)
        # columns fit the rows in view: measuring a thousand rows (Qt's default) after every edit that adds or
        # removes a row stalls the window for tens of milliseconds
        self.horizontalHeader().setResizeContentsPrecision(0)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.setItemDelegateForColumn(ANNOTATED, ClassDelegate(self))
        self.setItemDelegateForColumn(0, RowNumberDelegate(self))
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(24)
        self.setAlternatingRowColors(False)
        self.itemSelectionChanged.connect(self._selection_changed)
        self.cellDoubleClicked.connect(lambda row, column: column != ANNOTATED and self.cycle_activated.emit(row))

    def _set_columns(self, teachers: bool) -> None:
        columns = COLUMNS + (TEACHER_COLUMNS if teachers else ())
        if self.columnCount() == len(columns) and self.horizontalHeaderItem(0) is not None:
            return
        self.setColumnCount(len(columns))
        self.setHorizontalHeaderLabels(columns)
        for name in CLASS_NAMES:
            for column, tip in ((name, f"probability of {name}"), (ENSEMBLE.format(name), f"the teachers' ensemble: "
                                                                   f"probability of {name}")):
                if column in columns:
                    header = self.horizontalHeaderItem(columns.index(column))
                    header.setForeground(CLASS_COLOURS[name].darker(140))
                    header.setToolTip(tip)
        self.horizontalHeaderItem(ANNOTATED).setToolTip("double click (or F2) to choose the class; keys N, C, W, B")
        self.horizontalHeaderItem(TRAINING).setToolTip(
            "how far the cycle's sound is from the model's training data; beyond the limit it is outside it, and "
            "the prediction (greyed) is not to be trusted")
        self.horizontalHeaderItem(QUALITY).setToolTip(
            "whether the recording is good enough over the cycle to judge it (hover a cell for the reasons); a "
            "prediction on a poor cycle means little")
        if teachers:
            self.horizontalHeaderItem(len(COLUMNS)).setToolTip("each teacher's vote: N normal, C crackle, W wheeze, "
                                                               "B both")
        # the probabilities share the width left; with the teachers' columns there is none left, and every
        # column takes what its header and cells need (the table scrolls sideways rather than cut a header)
        header = self.horizontalHeader()
        for column, name in enumerate(columns):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch
                                        if name in PROBABILITY_COLUMNS and not teachers
                                        else QHeaderView.ResizeMode.ResizeToContents)

    def row_number(self, row: int) -> str:
        """What the "#" column shows in the row."""
        option = QStyleOptionViewItem()
        self.itemDelegateForColumn(0).initStyleOption(option, self.model().index(row, 0))
        return option.text

    def column(self, name: str) -> int:
        return [self.horizontalHeaderItem(i).text() for i in range(self.columnCount())].index(name)

    def _item(self, row: int, column: int, text: str, background=None, editable: bool = False) -> QTableWidgetItem:
        item = QTableWidgetItem(text)
        item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
        if not editable:
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
        if background is not None:
            item.setBackground(QBrush(background))
        self.setItem(row, column, item)
        return item

    def show_cycles(self, cycles: list[ShownCycle], teachers: list[list[list[float]] | None] | None = None, *,
                    distance_limit: float | None = None) -> None:
        """`teachers`: per cycle, each teacher's four probabilities (None: not predicted yet), or None to
        leave the teacher columns out. `distance_limit`: the model's, beyond which a cycle is unlike its
        training data (None: the model cannot tell). Only the rows that changed are written again (an edit
        changes a few of thousands); rows are inserted or removed where cycles were split, merged or deleted."""
        rows = [(c, None if teachers is None else teachers[i], distance_limit) for i, c in enumerate(cycles)]
        if (teachers is not None) != self._with_teachers or self.rowCount() != len(self._shown_rows):
            self._shown_rows = []  # other columns: every row anew
            self.setRowCount(0)
        old = self._shown_rows
        first = next((i for i, (a, b) in enumerate(zip(old, rows)) if a != b), min(len(old), len(rows)))
        last = next((i for i, (a, b) in enumerate(zip(reversed(old[first:]), reversed(rows[first:]))) if a != b),
                    min(len(old), len(rows)) - first)
        self.blockSignals(True)
        self._set_columns(teachers is not None)
        self._with_teachers = teachers is not None
        gone, new = len(old) - first - last, len(rows) - first - last
        if gone > new:
            self.model().removeRows(first, gone - new)
        elif new > gone:
            self.model().insertRows(first, new - gone)
        self.blockSignals(False)
        self._shown_rows = old[:first] + [None] * new + old[len(old) - last:]
        self._wanted_rows = rows
        top, bottom = self.rowAt(0), self.rowAt(self.viewport().height())
        self._pending_rows = sorted(range(first, first + new),
                                    key=lambda row: not top <= row <= (bottom if bottom >= 0 else len(rows)))
        self._write_pending()

    @property
    def filling(self) -> bool:
        """Rows of the last cycles shown are still to be written (in the next turns of the event loop)."""
        return bool(self._pending_rows)

    def _write_pending(self) -> None:
        """The next ROWS_AT_ONCE rows still to write: an hour's table never freezes the window."""
        batch, self._pending_rows = self._pending_rows[:ROWS_AT_ONCE], self._pending_rows[ROWS_AT_ONCE:]
        self.blockSignals(True)
        header = self.horizontalHeader()
        modes = [header.sectionResizeMode(c) for c in range(self.columnCount())]
        for column in range(self.columnCount()):  # sized once at the end, not again for every cell
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Fixed)
        for row in batch:
            self._write_row(row, *self._wanted_rows[row])
            self._shown_rows[row] = self._wanted_rows[row]
        for column, mode in enumerate(modes):
            header.setSectionResizeMode(column, mode)
        self.blockSignals(False)
        if self._pending_rows:
            self._pending_timer.start()

    def _write_row(self, row: int, c: ShownCycle, teachers: list[list[float]] | None,
                   distance_limit: float | None) -> None:
        self._item(row, 0, "")  # the number: RowNumberDelegate
        self._item(row, 1, f"{c.start:.3f}")
        self._item(row, 2, f"{c.end:.3f}")
        if c.predicted is None:
            self._item(row, 3, "predicting…").setForeground(MUTED)
            for k in range(len(CLASS_NAMES)):
                self._item(row, FIRST_PROBABILITY + k, "")
        else:
            # a heat map of the prediction and the probabilities, the stronger the colour the likelier; grey
            # when the sound is unlike the training data
            colour = (lambda k: DOUBTED) if c.doubted else class_colour
            prediction = self._item(row, 3, f"{CLASS_NAMES[c.predicted]} {c.confidence:.0%}",
                                    translucent(colour(c.predicted), 70))
            for k, p in enumerate(c.probabilities):
                self._item(row, FIRST_PROBABILITY + k, f"{p:.3f}", translucent(colour(k), int(150 * p)))
            if c.doubted:
                prediction.setToolTip(f"{OUTSIDE}: not to be trusted")
        truth = self._item(row, ANNOTATED, "no class" if c.truth is None else CLASS_NAMES[c.truth],
                           None if c.truth is None else translucent(class_colour(c.truth), 70), editable=True)
        truth.setToolTip("double click to choose the class")
        if c.truth is None:
            truth.setForeground(MUTED)
        match = self._item(row, MATCH, "" if c.matches is None else ("✓" if c.matches else "✗ differs"))
        if c.matches is False:
            match.setForeground(MISMATCH)
            match.setToolTip("the prediction differs from the annotation")
        self._item(row, TRAINING, likeness(c, distance_limit))
        self._quality_cell(row, c)
        if c.doubted:
            for column in (3, *range(FIRST_PROBABILITY, FIRST_PROBABILITY + len(CLASS_NAMES)), TRAINING):
                self.item(row, column).setForeground(DOUBTED)
        if self._with_teachers:
            self._teacher_cells(row, teachers)

    def _quality_cell(self, row: int, c: ShownCycle) -> None:
        text = {None: "", WARNING: "⚠ warning", POOR: "⚠ poor"}.get(c.quality, c.quality)
        cell = self._item(row, QUALITY, text, translucent(quality_colour(c.quality), 45) if c.poor else None)
        cell.setForeground(quality_colour(c.quality))
        cell.setToolTip(f"<qt>{reasons_html(c.quality, c.quality_reasons, 'cycle')}</qt>" if c.quality else "")
        prediction = self.item(row, 3)
        if c.poor and c.predicted is not None:
            font = prediction.font()
            font.setItalic(True)
            prediction.setFont(font)
            prediction.setToolTip("\n".join(filter(None, (prediction.toolTip(), POOR_WORDS))))

    def _teacher_cells(self, row: int, probabilities: list[list[float]] | None) -> None:
        first = len(COLUMNS)
        if not probabilities:
            for k in range(len(TEACHER_COLUMNS)):
                self._item(row, first + k, "…" if k == 0 else "").setForeground(MUTED)
            return
        votes = teacher_votes(probabilities)
        cell = self._item(row, first, " ".join(CLASS_NAMES[v][0].upper() for v in votes))
        cell.setToolTip("\n".join(f"teacher {i + 1}: {CLASS_NAMES[v]} {max(p):.0%}"
                                  for i, (v, p) in enumerate(zip(votes, probabilities))))
        for k, p in enumerate(ensemble_probabilities(probabilities)):
            self._item(row, first + 1 + k, f"{p:.3f}", translucent(class_colour(k), int(150 * p)))

    # ---------------------------------------------------------------- selection

    def select_cycle(self, index: int) -> None:
        """Selects that row alone (a click in the plot, a step, a review), whatever keys are held."""
        if 0 <= index < self.rowCount() and self.selected_cycles() != [index]:
            flags = QItemSelectionModel.SelectionFlag
            self.selectionModel().setCurrentIndex(self.model().index(index, 0), flags.ClearAndSelect | flags.Rows)
            self.scrollTo(self.model().index(index, 0))

    def select_cycles(self, indices: list[int]) -> None:
        """Restores a selection without announcing it (after a redraw)."""
        rows = [i for i in indices if 0 <= i < self.rowCount()]
        if rows == self.selected_cycles() and (not rows or self.currentRow() in rows):
            return  # as it is: selecting again would repaint the table
        flags = QItemSelectionModel.SelectionFlag
        selection = QItemSelection()
        for row in rows:
            selection.select(self.model().index(row, 0), self.model().index(row, self.columnCount() - 1))
        self.blockSignals(True)
        self.selectionModel().select(selection, flags.ClearAndSelect)
        if rows:
            self.selectionModel().setCurrentIndex(self.model().index(rows[0], 0), flags.NoUpdate)
            self.scrollTo(self.model().index(rows[0], 0))
        self.blockSignals(False)

    def selected_cycles(self) -> list[int]:
        return sorted(index.row() for index in self.selectionModel().selectedRows())

    def current_cycle(self) -> int | None:
        """The row with the focus when it is selected, else the first selected one."""
        rows = self.selected_cycles()
        if not rows:
            return None
        return self.currentRow() if self.currentRow() in rows else rows[0]

    def _selection_changed(self) -> None:
        index = self.current_cycle()
        if index is not None:
            self.cycle_selected.emit(index)

    def keyPressEvent(self, event) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.current_cycle() is not None:
            self.cycle_activated.emit(self.current_cycle())
            return
        super().keyPressEvent(event)
