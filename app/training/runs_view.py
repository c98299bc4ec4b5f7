"""The workspace's experiments side by side: status and headline Scores from the catalog; an experiment can
be renamed or deleted here (its shared teachers stay)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QHBoxLayout, QHeaderView, QInputDialog, QLabel, QMessageBox, QPushButton,
                               QStackedWidget, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from lungkd.core.errors import LungKDError
from lungkd.core.kd.store import delete_experiment, rename_experiment
from lungkd.core.workspace.catalog import Catalog
from lungkd.core.workspace.layout import REPORT_HTML, catalog_path
from lungkd.core.workspace.status import RunSummary, number_text, status_text

COLUMNS = ("experiment", "updated", "mean teacher", "best ensemble", "students (distilled / hard)",
           "second generation", "status")
EMPTY = ("<p style='font-size:13pt; color:#3a404b'>No experiments in this workspace yet.</p>"
         "<p style='color:#6e747e'>Training ▸ Train and distil (Ctrl+T) starts one; experiments run with "
         "<code>lungkd run</code> on this workspace appear here too.</p>")


def experiment_rows(workspace: Path) -> list[tuple]:
    """One row per experiment, newest first: the columns' texts, then the experiment's name and folder."""
    if not catalog_path(workspace).exists():
        return []
    with Catalog(catalog_path(workspace)) as catalog:
        rows = []
        for e in catalog.experiments():
            s = RunSummary.from_catalog(e.summary)
            rows.append((e.name, e.updated[:16].replace("T", " "), s.teachers_text(), s.ensemble_text(),
                         s.students_text(), number_text(s.second_generation, dash=True),
                         status_text(e.status, Path(e.folder), workspace), e.name, Path(e.folder)))
        return rows


class RunsView(QWidget):
    """The Experiments page of the main window."""

    changed = Signal()  # an experiment was renamed or deleted: its models moved or went

    def __init__(self, workspace: Path, parent=None):
        super().__init__(parent)
        self.workspace = workspace
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)  # headers and cells never clipped
        header.setStretchLastSection(True)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)  # as the cells
        self.empty = QLabel(EMPTY, alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.table)
        self.message = QLabel(wordWrap=True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QHBoxLayout()
        self.on_selected: list[QPushButton] = []  # enabled while an experiment is selected
        for text, slot in (("Refresh", self.refresh), ("Open report", self.open_report),
                           ("Rename…", self.rename_selected), ("Delete…", self.delete_selected)):
            button = QPushButton(text)
            button.clicked.connect(slot)
            buttons.addWidget(button)
            if slot != self.refresh:
                self.on_selected.append(button)
        self.table.itemSelectionChanged.connect(self._enable)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        self.experiments: list[tuple[str, Path]] = []  # (name, folder) per row
        self.refresh()

    def refresh(self) -> None:
        rows = experiment_rows(self.workspace)
        self.experiments = [row[-2:] for row in rows]
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, value in enumerate(row[:len(COLUMNS)]):
                item = QTableWidgetItem(value)
                item.setToolTip(value)
                item.setTextAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        self.stack.setCurrentWidget(self.table if rows else self.empty)
        self._enable()

    def _enable(self) -> None:
        """Open report, Rename and Delete act on the selected experiment: disabled while none is (an empty list)."""
        chosen = bool(self.table.selectionModel().selectedRows())
        for button in self.on_selected:
            button.setEnabled(chosen)

    def say(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color: #c0392b" if error else "")
        self.message.setText(text)

    def selected(self) -> tuple[str, Path] | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            self.say("Select an experiment in the table first.", error=True)
            return None
        return self.experiments[rows[0].row()]

    def open_report(self) -> None:
        chosen = self.selected()
        if chosen is None:
            return
        name, folder = chosen
        report = folder / REPORT_HTML
        if not report.is_file():
            self.say(f"{name} has no report yet: it has not run to the end.", error=True)
        elif not QDesktopServices.openUrl(QUrl.fromLocalFile(str(report))):
            self.say(f"No web browser could be started to show the report; open {report} yourself.", error=True)
        else:
            self.say(f"Opened the report of {name} in the web browser.")

    def rename_selected(self) -> None:
        chosen = self.selected()
        if chosen is None:
            return
        name, _ = chosen
        new_name, ok = QInputDialog.getText(self, "Rename experiment", f"New name for {name}:", text=name)
        new_name = new_name.strip()
        if not ok or not new_name or new_name == name:
            return
        self._change(lambda: rename_experiment(self.workspace, name, new_name), f"Renamed {name} to {new_name}.")

    def delete_selected(self) -> None:
        chosen = self.selected()
        if chosen is None:
            return
        name, _ = chosen
        answer = QMessageBox.question(self, "Delete experiment", f"Delete the experiment {name}? Its students, "
                                      "baselines, logits and reports are removed. Its teachers stay: they are shared "
                                      "with every experiment that uses the same teachers and data.")
        if answer == QMessageBox.StandardButton.Yes:
            self._change(lambda: delete_experiment(self.workspace, name), f"Deleted {name}; its teachers are kept.")

    def _change(self, change, done: str) -> None:
        try:
            change()
        except (LungKDError, OSError) as exc:
            self.say(str(exc), error=True)
        else:
            self.say(done)
            self.changed.emit()
        self.refresh()
