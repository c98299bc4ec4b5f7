"""File ▸ Analyse a folder…: every recording of a folder (and its subfolders) analysed by the chosen model in a
helper process of its own, as `lungkd predict FOLDER --export OUT` does it: a progress bar with the time left,
Cancel, and Resume, which skips what the workspace's results cache holds (core.analysis.results); a file that fails
is listed with its reason and the others go on. The run ends in one combined export (CSV, JSON and a Raven selection
table, each row with its provenance) in the export folder. The recordings are not opened in the window: a folder may
hold thousands."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget)

from lungkd.core.analysis.batch import Failure, Progress
from lungkd.core.analysis.combined_export import EXPORT_FILES, write_combined_export
from lungkd.core.text import printable

from ..engine import EngineTask
from ..progress_bar import ProgressBar
from .analysis_process import AnalysisProcess


def time_left(seconds: float | None) -> str:
    if seconds is None:
        return "working out the time left"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d} left" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d} left"


def folder_job(folder: Path, glob: str | None, model_folder: Path, export: Path, workspace: Path):
    """The engine's folder analysis with the results cache (in a helper process), then the combined export:
    progress as batch Progress, each recording's outcome delivered as it comes; the Batch and the export's paths
    at the end."""
    def job(report, cancel):
        helper = AnalysisProcess()  # a helper of its own: the window's analyses go on beside a folder's
        try:
            batch = helper.analyse_folder(folder, glob, model_folder, workspace, cancel, on_progress=report,
                                          on_result=report.deliver)
        finally:
            helper.close()
        return batch, write_combined_export(export, batch)
    return job


class FolderAnalysisDialog(QDialog):
    """Choose a folder and where its export goes; Analyse (or Resume after a cancel) runs it."""

    def __init__(self, workspace: Path, model_folder: Path, model_name: str, start_folder: Path | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Analyse a folder")
        self.workspace, self.model_folder = workspace, model_folder
        self.task: EngineTask | None = None
        self.failures: list[Failure] = []
        self.folder = QLineEdit(str(start_folder or ""))
        self.glob = QLineEdit(placeholderText="every recording; or e.g. *.wav, visit-2/*")
        self.export = QLineEdit()
        self.folder.textChanged.connect(self._propose_export)
        self._propose_export(self.folder.text())
        form = QFormLayout()
        form.addRow("Recordings", self._with_button(self.folder, "Choose…", self._choose_folder))
        form.addRow("Only", self.glob)
        form.addRow("Export to", self._with_button(self.export, "Choose…", self._choose_export))
        form.addRow("Model", QLabel(printable(model_name)))
        self.progress = ProgressBar(textVisible=True)
        self.progress.setFormat("")
        self.status = QLabel(wordWrap=True, textFormat=Qt.TextFormat.PlainText)
        self.status.setMinimumHeight(3 * self.status.fontMetrics().lineSpacing())
        self.status.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.status.setText("Recordings analysed before by this model are not analysed again.")
        self.failure_list = QListWidget(wordWrap=True)
        self.failure_list.setVisible(False)
        buttons = QDialogButtonBox()
        self.start_button = buttons.addButton("Analyse", QDialogButtonBox.ButtonRole.ActionRole)
        self.cancel_button = buttons.addButton("Cancel", QDialogButtonBox.ButtonRole.ActionRole)
        self.open_button = buttons.addButton("Open export folder", QDialogButtonBox.ButtonRole.ActionRole)
        self.close_button = buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(self.export.text())))
        self.close_button.clicked.connect(self.close)
        layout = QVBoxLayout(self)
        for part in (form, self.progress, self.status, self.failure_list, buttons):
            (layout.addLayout if isinstance(part, QFormLayout) else layout.addWidget)(part)
        self._running(False)
        self.open_button.setEnabled(False)
        self.resize(640, 360)

    @staticmethod
    def _with_button(field: QLineEdit, text: str, slot) -> QWidget:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(field)
        button = QPushButton(text)
        button.clicked.connect(slot)
        layout.addWidget(button)
        return row

    def _propose_export(self, folder: str) -> None:
        if folder and not self.export.isModified():  # a folder the user chose stays
            self.export.setText(str(Path(folder).parent / f"{Path(folder).name}-lungkd"))

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A folder of recordings", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def _choose_export(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Where the export goes", self.export.text())
        if folder:
            self.export.setText(folder)
            self.export.setModified(True)

    def _running(self, running: bool) -> None:
        for widget in (self.start_button, self.folder, self.glob, self.export):
            widget.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    # ---------------------------------------------------------------- the run

    def start(self) -> EngineTask | None:
        folder, export = Path(self.folder.text()), Path(self.export.text())
        if not self.folder.text() or not folder.is_dir():
            self.status.setText("Choose a folder of recordings first.")
            return None
        self.failures = []
        self.failure_list.clear()
        self.failure_list.setVisible(False)
        self.open_button.setEnabled(False)
        self.status.setText(f"Looking for recordings in {printable(str(folder))}…")
        self.task = EngineTask(folder_job(folder, self.glob.text().strip() or None, self.model_folder, export,
                                          self.workspace), "Analyse a folder", self)
        self.task.progress.connect(self._progress)
        self.task.partial.connect(self._outcome)
        self.task.finished.connect(self._finished)
        self.task.cancelled.connect(self._cancelled)
        self.task.failed.connect(lambda message, details: self._ended(f"The analysis stopped: {message}"))
        self._running(True)
        return self.task.start()

    def cancel(self) -> None:
        if self.task is not None:
            self.cancel_button.setEnabled(False)
            self.status.setText("Stopping after the recording being analysed…")
            self.task.cancel()

    def _progress(self, progress: Progress) -> None:
        self.progress.setRange(0, max(progress.total, 1))
        self.progress.setValue(progress.done)
        before = f" · {progress.reused} done before" if progress.reused else ""
        self.progress.setFormat(f"%v of %m recordings{before} · {time_left(progress.eta_s)}")
        if progress.current is not None:
            self.status.setText(f"Analysing {printable(progress.current.name)}")

    def _outcome(self, outcome) -> None:
        if isinstance(outcome, Failure):
            self.failures.append(outcome)
            item = QListWidgetItem(printable(f"{outcome.path.name}: {outcome.message}"))
            item.setToolTip(printable(outcome.details))
            self.failure_list.addItem(item)
            self.failure_list.setVisible(True)

    def _finished(self, result) -> None:
        batch, paths = result
        for failure in batch.failures:  # folders that could not be read, named before any recording
            if failure not in self.failures:
                self._outcome(failure)
        reused = sum(r.reused for r in batch.results)
        self.progress.setFormat("%v of %m recordings · done")
        self.open_button.setEnabled(True)
        self.start_button.setText("Analyse")
        self._ended(f"{len(batch.results)} recording(s) analysed ({reused} of them in an earlier run), "
                    f"{len(batch.failures)} could not be. {sum(len(r.cycles) for r in batch.results)} cycles written as CSV, JSON and a "
                    f"Raven selection table ({', '.join(EXPORT_FILES.values())}) to "
                    f"{printable(str(paths['csv'].parent))}.")

    def _cancelled(self) -> None:
        self.start_button.setText("Resume")
        self._ended(f"Stopped after {self.progress.value()} of {self.progress.maximum()} recordings; what was "
                    "analysed is kept: Resume goes on where it stopped, without analysing it again.")

    def _ended(self, text: str) -> None:
        self.status.setText(text)
        self._running(False)

    def closeEvent(self, event) -> None:
        if self.task is not None and self.task.is_running():
            self.task.cancel()
            self.task.wait()
        super().closeEvent(event)
