"""The Recordings page: open recordings on the left; waveform, cycle track and spectrogram above the cycle
table on the right. Everything slow (decoding, spectrograms, analysis) runs in the engine thread."""
from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import QLabel, QSplitter, QStackedWidget, QVBoxLayout, QWidget

from lungkd.core.analysis.predict import write_csv
from lungkd.core.text import printable

from .cycle_table import CycleTable
from .engine import EngineTask, TaskQueue
from .playback import Player
from .recording_jobs import (FailedRecording, ModelCache, OpenRecording, expand_paths, nothing_to_open, open_job,
                             reanalyse_job, spectrogram_job)
from .recording_list import RecordingList
from .recording_view import RecordingView
from .spectrogram_settings import SpectrogramBar, SpectrogramSettings

PLACEHOLDER = ("<p style='font-size:15pt; color:#3a404b'>Drop lung-sound recordings here</p>"
               "<p style='color:#6e747e'>wav, flac or ogg files, or folders of them — or press Ctrl+O.<br>"
               "Cycles come from the annotation file beside a recording when there is one.</p>")


class RecordingsPage(QWidget):
    status = Signal(str)
    error = Signal(str, str)  # message, details
    selection_changed = Signal()  # another recording or cycle: actions may change state

    def __init__(self, store: QSettings, queue: TaskQueue, player: Player, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("page")
        self.store = store
        self.queue = queue
        self.player = player
        self.settings = SpectrogramSettings.load(store)
        self.recordings: dict[Path, OpenRecording] = {}
        self.current: OpenRecording | None = None
        self.model_folder: Path | None = None
        self.models = ModelCache()

        self.recording_list = RecordingList()
        self.spectrogram_bar = SpectrogramBar(self.settings)
        self.view = RecordingView()
        self.table = CycleTable()
        self.notice = QLabel(objectName="notice", wordWrap=True, visible=False)
        self._layout()

        self.recording_list.recording_chosen.connect(self.show_recording)
        self.recording_list.failure_activated.connect(lambda f: self.error.emit(f"{f.path.name}: {f.message}",
                                                                                f.details))
        self.spectrogram_bar.changed.connect(self.apply_settings)
        self.view.cycle_clicked.connect(self.select_cycle)
        self.view.cycle_double_clicked.connect(self.play_cycle)
        self.table.cycle_selected.connect(self.select_cycle)
        self.table.cycle_activated.connect(self.play_cycle)
        self.player.position.connect(self.view.set_play_position)

    def _layout(self) -> None:
        right = QWidget()
        column = QVBoxLayout(right)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.spectrogram_bar)
        column.addWidget(self.notice)
        self.plots_and_table = QSplitter(Qt.Orientation.Vertical)
        self.plots_and_table.addWidget(self.view)
        self.plots_and_table.addWidget(self.table)
        self.plots_and_table.setStretchFactor(0, 3)
        self.plots_and_table.setStretchFactor(1, 1)
        self.plots_and_table.setSizes([560, 220])
        self.stack = QStackedWidget()  # the invitation to drop files until a recording is open
        self.placeholder = QLabel(PLACEHOLDER, alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True)
        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(self.plots_and_table)
        column.addWidget(self.stack, 1)
        splitter = QSplitter()
        splitter.addWidget(self.recording_list)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([300, 1100])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(splitter)

    # ---------------------------------------------------------------- opening and analysing

    def open_paths(self, paths: list[Path]) -> EngineTask | None:
        files, left_out = expand_paths([Path(p) for p in paths])
        if not files and not left_out:
            reason = nothing_to_open([Path(p) for p in paths])
            self.status.emit(reason)
            if not self.recordings:  # the empty page says it too, where the user is looking
                self.placeholder.setText(PLACEHOLDER + f"<p style='color:#c0392b'>{html.escape(reason)}</p>")
            return None
        self.placeholder.setText(PLACEHOLDER)
        task = EngineTask(open_job(files, self.model_folder, self.settings, self.models, left_out),
                          "Opening recordings")
        task.partial.connect(self._result)
        task.failed.connect(self.error)
        return self.queue.submit(task)

    def set_model(self, folder: Path | None) -> None:
        """Analyses with this model from now on, and again every recording already open."""
        self.model_folder = folder
        if folder is not None and self.recordings:
            task = EngineTask(reanalyse_job(list(self.recordings.values()), folder, self.models), "Analysing")
            task.partial.connect(self._result)
            task.failed.connect(self.error)
            self.queue.submit(task)

    def _result(self, result) -> None:
        if isinstance(result, OpenRecording):
            self.recordings[result.path] = result
        elif isinstance(result, FailedRecording):
            self.recordings.pop(result.path, None)
            # printable: Qt cuts a text at a name's byte that is not UTF-8; it is shown as U+FFFD instead
            self.status.emit(printable(f"Could not open {result.path.name}: {result.message}"))
        elif isinstance(result, tuple):  # (path, analysis, notice) from re-analysis
            path, analysis, notice = result
            if path not in self.recordings:  # removed meanwhile
                return
            result = self.recordings[path]
            result.analysis, result.notice = analysis, notice
        else:
            return
        item = self.recording_list.show_result(result)
        if isinstance(result, OpenRecording) and (self.current is None or self.current.path == result.path):
            if self.recording_list.currentItem() is item:  # new analysis of the recording on screen
                self.show_recording(result.path)
            else:
                self.recording_list.setCurrentItem(item)  # shows it

    def show_recording(self, path: Path) -> None:
        recording = self.recordings.get(path)
        if recording is None:
            return
        self.player.stop()
        self.current = recording
        self.stack.setCurrentWidget(self.plots_and_table)
        self.view.show_recording(recording, self.settings)
        self.table.show_analysis(recording.analysis)
        self._show_notice(recording.analysis)
        self._refresh_spectrogram()
        self.selection_changed.emit()

    def remove_current(self) -> None:
        path = self.recording_list.current_path()
        if path is None:
            return
        self.player.stop()
        self.recordings.pop(path, None)
        self.recording_list.remove(path)
        self.current = None
        if not self.recordings:
            self.stack.setCurrentIndex(0)
            self.table.show_analysis(None)
            self._show_notice(None)
        self.selection_changed.emit()

    def _show_notice(self, analysis) -> None:
        """Above the predictions, what must be known before trusting them: whether the recording (or some of its
        cycles) is unlike the model's training data, and what the model's card warns of."""
        lines = list(analysis.model_warnings) if analysis else []
        unlike = [c for c in analysis.cycles if c.unlike_training] if analysis else []
        if analysis and analysis.unlike_training:
            lines.insert(0, f"<b>This recording is unlike the model's training data</b> (median distance "
                            f"{analysis.training_distance:.1f}, limit {analysis.distance_limit:.1f}): every prediction "
                            "on it is greyed and not to be trusted.")
        elif unlike:
            lines.insert(0, f"<b>{len(unlike)} of {len(analysis.cycles)} cycles are unlike the model's training "
                            "data</b>: their predictions are greyed and not to be trusted.")
        self.notice.setText("<br>".join(lines))
        self.notice.setVisible(bool(lines))

    # ---------------------------------------------------------------- spectrogram settings

    def apply_settings(self, settings: SpectrogramSettings) -> None:
        self.settings = settings
        settings.save(self.store)
        self.view.apply_settings(settings)
        self._refresh_spectrogram()

    def _refresh_spectrogram(self) -> None:
        """Recomputes the current image off the GUI thread when its window or hop changed. Deliberately not
        through the task queue: a redraw of the recording on screen must not wait behind the analysis of
        many others."""
        recording = self.current
        if recording is None or recording.spectrogram.key == self.settings.image_key():
            return
        task = EngineTask(spectrogram_job(recording.samples, recording.sample_rate, self.settings), parent=self)
        task.finished.connect(lambda spectrogram: self._spectrogram_ready(recording, spectrogram))
        task.failed.connect(self.error)
        task.done.connect(task.deleteLater)
        task.start()

    def _spectrogram_ready(self, recording: OpenRecording, spectrogram) -> None:
        if spectrogram.key != self.settings.image_key():  # the settings moved on meanwhile
            return
        recording.spectrogram = spectrogram
        if recording is self.current:
            self.view.set_spectrogram(spectrogram)

    # ---------------------------------------------------------------- cycles: selection, playback, export

    def select_cycle(self, index: int) -> None:
        self.table.select_cycle(index)
        self.view.select_cycle(index)
        self.selection_changed.emit()

    def step_cycle(self, step: int) -> None:
        cycles = self.current.analysis.cycles if self.current and self.current.analysis else []
        if cycles:
            index = self.table.current_cycle()
            target = (0 if step > 0 else len(cycles) - 1) if index is None else index + step
            self.select_cycle(min(max(target, 0), len(cycles) - 1))

    def play_cycle(self, index: int) -> None:
        self.select_cycle(index)
        cycle = self.current.analysis.cycles[index]
        self.play(cycle.start, cycle.end)

    def play(self, start: float, end: float) -> None:
        if self.current is not None:
            self.player.play(self.current.samples, self.current.sample_rate, start, end)

    def toggle_playback(self) -> None:
        """Stops, or plays the selected cycle (the visible part of the recording when none is selected)."""
        if self.player.is_playing():
            self.player.stop()
        elif self.table.current_cycle() is not None:
            self.play_cycle(self.table.current_cycle())
        elif self.current is not None:
            self.play(*self.view.visible_range())

    def analyses(self):
        return [r.analysis for r in self.recordings.values() if r.analysis is not None]

    def export_csv(self, path: Path) -> None:
        write_csv(self.analyses(), path)
        self.status.emit(f"Wrote {sum(len(a.cycles) for a in self.analyses())} cycles to {path}")
