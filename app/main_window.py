"""LungKD Studio's main window: recordings with per-cycle predictions."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDoubleSpinBox, QFileDialog, QHBoxLayout, QLabel,
                               QListWidget, QListWidgetItem, QMainWindow, QMessageBox, QSplitter, QTableWidget,
                               QTableWidgetItem, QToolBar, QVBoxLayout, QWidget)

from lungkd.core.analysis import RecordingAnalysis, analyse_recording, display_spectrogram, write_csv
from lungkd.core.audio import AUDIO_EXTENSIONS, load_audio
from lungkd.core.catalog import Catalog
from lungkd.core.evaluation import load_saved_model
from lungkd.core.labels import CLASS_NAMES
from lungkd.core.model_card import read_model_card

from .engine import EngineTask
from .recording_view import COLOUR_MAPS, RecordingView
from .theme import CLASS_COLOURS, MISMATCH

DEMO_MODEL = Path(__file__).resolve().parents[1] / "resources" / "models" / "demo-cnn6"
DEFAULT_SETTINGS = {"colour_map": "viridis", "db_floor": -110.0, "db_range": 90.0, "fmin": 0.0, "fmax": 4000.0}
TABLE_COLUMNS = ("start (s)", "end (s)", "prediction", *(f"p({n})" for n in CLASS_NAMES), "annotated", "match")


@dataclass
class LoadedRecording:
    analysis: RecordingAnalysis
    samples: np.ndarray
    spectrogram: np.ndarray
    seconds_per_frame: float
    hz_per_bin: float


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files as given, folders as the audio files inside them (sorted); other files stay in, to be refused."""
    out = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
        else:
            out.append(path)
    return out


def load_for_display(path: Path, model) -> LoadedRecording:
    """Everything the view needs, computed off the GUI thread."""
    analysis = analyse_recording(path, model)
    decoded = load_audio(path)
    peak = float(np.abs(decoded.samples).max()) or 1.0
    spectrogram, spf, hpb = display_spectrogram(decoded.samples, decoded.sample_rate)
    return LoadedRecording(analysis, decoded.samples / peak, spectrogram, spf, hpb)


class MainWindow(QMainWindow):
    def __init__(self, workspace: Path, settings: QSettings | None = None):
        super().__init__()
        self.workspace = workspace
        self.settings = settings or QSettings("LungKD", "Studio")
        self.recordings: dict[str, LoadedRecording] = {}
        self.errors: dict[str, str] = {}
        self.tasks: list[EngineTask] = []
        self.current: LoadedRecording | None = None
        self.setWindowTitle("LungKD Studio")
        self.resize(1400, 860)
        self.setAcceptDrops(True)
        self._build_actions()
        self._build_layout()
        self.refresh_models()
        self.statusBar().showMessage("Drop wav, flac or ogg recordings (or folders) onto the window.")

    # ---------------------------------------------------------------- layout

    def _build_actions(self) -> None:
        menu = self.menuBar().addMenu("&File")
        self.open_action = QAction("&Open recordings…", self, shortcut=QKeySequence.StandardKey.Open,
                                   triggered=self.open_dialog)
        self.export_action = QAction("&Export cycles as CSV…", self, shortcut=QKeySequence("Ctrl+E"),
                                     triggered=self.export_dialog)
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit, triggered=self.close)
        for action in (self.open_action, self.export_action, quit_action):
            menu.addAction(action)
        toolbar = QToolBar("Main")
        toolbar.setMovable(False)
        self.addToolBar(toolbar)
        toolbar.addAction(self.open_action)
        toolbar.addAction(self.export_action)
        toolbar.addSeparator()
        toolbar.addWidget(QLabel(" Model: "))
        self.model_picker = QComboBox()
        self.model_picker.setMinimumWidth(360)
        self.model_picker.setToolTip("Models of the workspace, with their test Score")
        toolbar.addWidget(self.model_picker)

    def _spin(self, key: str, low: float, high: float, step: float, suffix: str) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setRange(low, high)
        spin.setSingleStep(step)
        spin.setDecimals(0)
        spin.setSuffix(suffix)
        spin.setValue(self.display_settings()[key])
        spin.valueChanged.connect(lambda value: self._set_setting(key, value))
        return spin

    def _build_layout(self) -> None:
        self.recording_list = QListWidget()
        self.recording_list.setMinimumWidth(280)
        self.recording_list.currentItemChanged.connect(self._recording_chosen)
        self.view = RecordingView()
        self.view.cycle_clicked.connect(self.select_cycle)
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._table_selection_changed)
        controls = QHBoxLayout()
        self.colour_map = QComboBox()
        self.colour_map.addItems(COLOUR_MAPS)
        self.colour_map.setCurrentText(self.display_settings()["colour_map"])
        self.colour_map.currentTextChanged.connect(lambda name: self._set_setting("colour_map", name))
        for label, widget in (("Colour map", self.colour_map),
                              ("dB floor", self._spin("db_floor", -160, 0, 5, " dB")),
                              ("dB range", self._spin("db_range", 10, 160, 5, " dB")),
                              ("from", self._spin("fmin", 0, 20000, 100, " Hz")),
                              ("to", self._spin("fmax", 100, 24000, 100, " Hz"))):
            controls.addWidget(QLabel(label))
            controls.addWidget(widget)
        controls.addStretch(1)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addLayout(controls)
        splitter_v = QSplitter(Qt.Orientation.Vertical)
        splitter_v.addWidget(self.view)
        splitter_v.addWidget(self.table)
        splitter_v.setSizes([560, 240])
        right_layout.addWidget(splitter_v)
        splitter = QSplitter()
        splitter.addWidget(self.recording_list)
        splitter.addWidget(right)
        splitter.setSizes([300, 1100])
        self.setCentralWidget(splitter)

    # ---------------------------------------------------------------- settings

    def display_settings(self) -> dict:
        return {key: type(default)(self.settings.value(f"spectrogram/{key}", default))
                for key, default in DEFAULT_SETTINGS.items()}

    def _set_setting(self, key: str, value) -> None:
        self.settings.setValue(f"spectrogram/{key}", value)
        self.view.apply_settings(self.display_settings())

    # ---------------------------------------------------------------- models

    def refresh_models(self) -> None:
        self.model_picker.clear()
        entries = []
        if (DEMO_MODEL / "lungkd.json").exists():
            entries.append((DEMO_MODEL, read_model_card(DEMO_MODEL)))
        catalog_path = self.workspace / "catalog.sqlite"
        if catalog_path.exists():
            with Catalog(catalog_path) as catalog:
                entries += [(row.path, read_model_card(row.path)) for row in catalog.models()
                            if read_model_card(row.path)]
        for path, card in entries:
            score = (card.get("test") or {}).get("score")
            name = "demo (synthetic data)" if path == DEMO_MODEL else f"{Path(path).parent.name}"
            self.model_picker.addItem(f"{name} — {card['architecture']}, Score "
                                      f"{'n/a' if score is None else f'{score:.1f}'}", str(path))

    def selected_model(self):
        folder = self.model_picker.currentData()
        return load_saved_model(folder)[0] if folder else None

    # ---------------------------------------------------------------- loading

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        self.open_paths([Path(url.toLocalFile()) for url in event.mimeData().urls()])
        event.acceptProposedAction()

    def open_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open recordings", "", "Audio (*.wav *.flac *.ogg);;All files (*)")
        self.open_paths([Path(f) for f in files])

    def open_paths(self, paths: list[Path]) -> EngineTask | None:
        files = expand_paths(paths)
        if not files:
            return None
        model = self.selected_model()
        if model is None:
            self.statusBar().showMessage("No model to analyse with: train one with the wizard or `lungkd demo`.")
            return None

        def job(report, cancel):
            for number, path in enumerate(files, start=1):
                if cancel.is_set():
                    break
                try:
                    report((number, len(files), path, load_for_display(path, model), None))
                except Exception as exc:  # one bad file among many: it gets an error, the rest load
                    report((number, len(files), path, None, str(exc)))

        task = EngineTask(job, self)
        task.progress.connect(self._loaded)
        task.failed.connect(self.show_error)
        task.done.connect(lambda: self.statusBar().showMessage(f"{len(self.recordings)} recording(s) analysed"
                                                               + (f", {len(self.errors)} failed" if self.errors else "")))
        self.tasks.append(task)
        self.statusBar().showMessage(f"Analysing {len(files)} recording(s)…")
        return task.start()

    def _loaded(self, message) -> None:
        number, total, path, loaded, error = message
        self.statusBar().showMessage(f"Analysed {number}/{total}: {path.name}")
        item = QListWidgetItem()
        if error is not None:
            self.errors[str(path)] = error
            item.setText(f"⚠ {path.name}\n{error}")
            item.setForeground(MISMATCH)
            item.setToolTip(error)
            self.recording_list.addItem(item)
            return
        a = loaded.analysis
        self.recordings[str(path)] = loaded
        counts = ", ".join(f"{n} {c}" for c, n in a.class_counts().items() if n)
        item.setText(f"{a.name}\n{a.duration:.1f} s · {a.device or 'unknown device'} · {len(a.cycles)} cycles"
                     f" ({a.cycle_source})\n{counts}")
        item.setData(Qt.ItemDataRole.UserRole, str(path))
        self.recording_list.addItem(item)
        if self.current is None:
            self.recording_list.setCurrentItem(item)

    def _recording_chosen(self, item: QListWidgetItem | None) -> None:
        key = item.data(Qt.ItemDataRole.UserRole) if item else None
        if key not in self.recordings:
            return
        self.current = self.recordings[key]
        c = self.current
        self.view.show_recording(c.samples, c.analysis.sample_rate, c.spectrogram, c.seconds_per_frame,
                                 c.hz_per_bin, c.analysis, self.display_settings())
        self._fill_table(c.analysis)

    def _fill_table(self, analysis: RecordingAnalysis) -> None:
        self.table.blockSignals(True)
        self.table.setRowCount(len(analysis.cycles))
        for row, cycle in enumerate(analysis.cycles):
            predicted = CLASS_NAMES[cycle.predicted]
            values = (f"{cycle.start:.3f}", f"{cycle.end:.3f}", predicted, *(f"{p:.3f}" for p in cycle.probabilities),
                      "" if cycle.truth is None else CLASS_NAMES[cycle.truth],
                      "" if cycle.matches is None else ("yes" if cycle.matches else "NO"))
            for column, value in enumerate(values):
                item = QTableWidgetItem(value)
                if column == 2:
                    item.setForeground(CLASS_COLOURS[predicted].darker(130))
                if column == len(values) - 1 and cycle.matches is False:
                    item.setForeground(MISMATCH)
                self.table.setItem(row, column, item)
        self.table.resizeColumnsToContents()
        self.table.blockSignals(False)

    # ---------------------------------------------------------------- selection both ways

    def select_cycle(self, index: int) -> None:
        self.table.selectRow(index)

    def _table_selection_changed(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows and self.current is not None:
            self.view.select_cycle(rows[0].row(), self.current.analysis.cycles)

    # ---------------------------------------------------------------- export and errors

    def export_csv(self, path: Path) -> None:
        write_csv([r.analysis for r in self.recordings.values()], path)
        self.statusBar().showMessage(f"Wrote {path}")

    def export_dialog(self) -> None:
        if not self.recordings:
            self.statusBar().showMessage("Nothing to export yet.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export cycles", "cycles.csv", "CSV (*.csv)")
        if path:
            self.export_csv(Path(path))

    def show_error(self, message: str, details: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, "LungKD", message, parent=self)
        box.setDetailedText(details)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.open()

    def closeEvent(self, event) -> None:
        for task in self.tasks:
            task.cancel()
            task.wait(10000)
        super().closeEvent(event)
