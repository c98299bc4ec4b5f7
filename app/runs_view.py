"""The workspace's experiments side by side: status and headline Scores from the catalog."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from lungkd.core.workspace.catalog import CATALOG_FILE, Catalog

COLUMNS = ("experiment", "status", "updated", "mean teacher", "best ensemble", "students (distilled / hard)",
           "second generation")


def _f(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def experiment_rows(workspace: Path) -> list[tuple]:
    if not (workspace / CATALOG_FILE).exists():
        return []
    with Catalog(workspace / CATALOG_FILE) as catalog:
        rows = []
        for e in catalog.experiments():
            s = e.summary or {}
            ensemble = s.get("ensemble")
            students = "; ".join(f"{g['arch']} {g['labels']}: {_f(g['score'])} / {_f(g['hard'])}"
                                 for g in s.get("students", []))
            rows.append((e.name, e.status, e.updated[:16].replace("T", " "), _f(s.get("teachers")),
                         f"{_f(ensemble['score'])} (k={ensemble['k']})" if ensemble else "—", students or "—",
                         _f(s.get("second_generation")), Path(e.folder)))
        return rows


class RunsView(QWidget):
    """The Experiments page of the main window."""

    def __init__(self, workspace: Path, parent=None):
        super().__init__(parent)
        self.workspace = workspace
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setStretchLastSection(True)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        report = QPushButton("Open report")
        report.clicked.connect(self.open_report)
        buttons = QHBoxLayout()
        buttons.addWidget(refresh)
        buttons.addWidget(report)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        self.folders: list[Path] = []
        self.refresh()

    def refresh(self) -> None:
        rows = experiment_rows(self.workspace)
        self.folders = [row[-1] for row in rows]
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, value in enumerate(row[:-1]):
                item = QTableWidgetItem(value)
                item.setTextAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()

    def open_report(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.folders[rows[0].row()] / "report.html")))
