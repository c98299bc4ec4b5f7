"""The Recordings page: open recordings on the left; waveform, cycle track and spectrogram above the cycle
table on the right. Everything slow (decoding, spectrograms, analysis) runs in the engine thread.

Each analysed recording's cycles live in one CycleDocument (annotation_editing.py): the plots, the table,
the review queue and the saver all read it, and every edit goes through its undo stack."""
from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QFileSystemWatcher, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QUndoGroup
from PySide6.QtWidgets import QLabel, QSplitter, QStackedWidget, QVBoxLayout, QWidget

from lungkd.core.analysis.predict import EDITED, RecordingAnalysis, write_csv
from lungkd.core.data.annotation_io import file_digest
from lungkd.core.kd.store import teachers_for_model
from lungkd.core.text import printable

from .annotation_editing import CycleDocument
from .cycle_table import CycleTable
from .edit_overlay import CycleEditor
from .engine import EngineTask, TaskQueue
from .playback import Player
from .prediction_updates import PredictionUpdates
from .recording_jobs import (Analysed, FailedRecording, ModelCache, OpenRecording, expand_paths, nothing_to_open,
                             open_job, reanalyse_job, spectrogram_job)
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
    documents_changed = Signal()  # an edit, a save, a change on disk: unsaved marks may change

    def __init__(self, store: QSettings, queue: TaskQueue, player: Player, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("page")
        self.store = store
        self.queue = queue
        self.player = player
        self.settings = SpectrogramSettings.load(store)
        self.recordings: dict[Path, OpenRecording] = {}
        self.documents: dict[Path, CycleDocument] = {}
        self.current: OpenRecording | None = None
        self.model_folder: Path | None = None
        self.teacher_folders: list[Path] = []  # the chosen model's experiment's teachers, when it is a student
        self.show_teachers = False
        self.models = ModelCache()
        self.undo_group = QUndoGroup(self)
        self.predictions = PredictionUpdates(queue, self.models, self.recordings, self.documents, self)
        self.watcher = QFileSystemWatcher(self)  # annotation files (and their folders) changed by others

        self.recording_list = RecordingList()
        self.spectrogram_bar = SpectrogramBar(self.settings)
        self.view = RecordingView()
        self.editor = CycleEditor(self.view)
        self.table = CycleTable()
        self.bars = QVBoxLayout()  # the edit and review bars (annotation_actions.py, review_mode.py)
        self.bars.setContentsMargins(0, 0, 0, 0)
        self.bars.setSpacing(2)
        self.notice = QLabel(objectName="notice", wordWrap=True, visible=False)
        self._layout()
        self._redraw_timer = QTimer(self, singleShot=True, interval=0)
        self._redraw_timer.timeout.connect(self._redraw)
        self._pending_selection: list[int] | None = None

        self.recording_list.recording_chosen.connect(self.show_recording)
        self.recording_list.failure_activated.connect(lambda f: self.error.emit(f"{f.path.name}: {f.message}",
                                                                                f.details))
        self.spectrogram_bar.changed.connect(self.apply_settings)
        self.view.cycle_clicked.connect(self.select_cycle)
        self.view.cycle_double_clicked.connect(self.play_cycle)
        self.table.cycle_selected.connect(self._table_selected)
        self.table.cycle_activated.connect(self.play_cycle)
        self.table.label_chosen.connect(lambda row, label: self.current_document().set_labels({row: label}))
        self.player.position.connect(self.view.set_play_position)
        self.predictions.failed.connect(self.error)
        self.watcher.fileChanged.connect(self._disk_changed)
        self.watcher.directoryChanged.connect(self._disk_changed)

    def _layout(self) -> None:
        right = QWidget()
        column = QVBoxLayout(right)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.spectrogram_bar)
        column.addLayout(self.bars)
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
        """Analyses with this model from now on: the cycles of every open recording it has not seen yet
        (all of them for a new model; none when switching back), and the cycles of recordings opened
        without a model."""
        self.model_folder = folder
        self.predictions.forget_failures()  # choosing a model (again) asks for what was cancelled or failed
        self.teacher_folders = teachers_for_model(folder) if folder is not None else []
        self.show_teachers = self.show_teachers and bool(self.teacher_folders)
        if folder is None:
            return
        unanalysed = [(recording, None) for path, recording in self.recordings.items() if path not in self.documents]
        if unanalysed:
            task = EngineTask(reanalyse_job(unanalysed, folder, self.models), "Analysing")
            task.partial.connect(self._result)
            task.failed.connect(self.error)
            self.queue.submit(task)
        self.predictions.request(list(self.documents.values()), [folder], "Analysing")
        self._schedule_redraw()

    def _result(self, result) -> None:
        if isinstance(result, OpenRecording):
            self.recordings[result.path] = result
            if result.analysis is not None:
                self._adopt_analysis(result.path, result.model_folder, result.analysis, result.annotation_digest)
        elif isinstance(result, FailedRecording):
            if result.path not in self.documents or not self.documents[result.path].modified:
                self.recordings.pop(result.path, None)
                self._drop_document(result.path)
            # printable: Qt cuts a text at a name's byte that is not UTF-8; it is shown as U+FFFD instead
            self.status.emit(printable(f"Could not open {result.path.name}: {result.message}"))
        elif isinstance(result, Analysed):  # a recording opened without a model, now analysed
            if result.path not in self.recordings:  # removed meanwhile
                return
            recording = self.recordings[result.path]
            recording.analysis, recording.notice = result.analysis, result.notice
            self._adopt_analysis(result.path, result.model_folder, result.analysis, result.annotation_digest)
            result = recording
        else:
            return
        item = self.recording_list.show_result(result, self.documents.get(result.path), self.model_folder)
        if isinstance(result, OpenRecording) and (self.current is None or self.current.path == result.path):
            if self.recording_list.currentItem() is item:  # new analysis of the recording on screen
                self.show_recording(result.path)
            else:
                self.recording_list.setCurrentItem(item)  # shows it

    def _adopt_analysis(self, path: Path, model_folder: Path, analysis: RecordingAnalysis, digest: str | None) -> None:
        """The first analysis of a recording makes its document; later ones (the same recording opened
        again) replace it unless it holds unsaved edits."""
        document = self.documents.get(path)
        if document is not None and document.modified:
            document.add_predictions(model_folder, analysis)  # those of its spans that are still there count
            self.status.emit(printable(f"{path.name} has unsaved edits: they are kept (close it without saving to "
                                       "reload the annotation)."))
            return
        self._drop_document(path)
        self._add_document(CycleDocument.from_analysis(analysis, model_folder, self.recordings[path].sample_rate,
                                                       digest, self))

    def _add_document(self, document: CycleDocument) -> CycleDocument:
        self.documents[document.audio_path] = document
        self.undo_group.addStack(document.undo_stack)
        document.changed.connect(lambda d=document: self._document_changed(d))
        document.state_changed.connect(lambda d=document: self._state_changed(d))
        document.edited.connect(lambda d=document: self._document_edited(d))
        self.watcher.addPath(str(document.audio_path.parent))
        if document.annotation_path.exists():
            self.watcher.addPath(str(document.annotation_path))
        return document

    def _drop_document(self, path: Path) -> None:
        document = self.documents.pop(path, None)
        if document is not None:
            self.undo_group.removeStack(document.undo_stack)
            document.deleteLater()
            if self.editor.document is document:
                self.editor.set_document(None)

    def document_for(self, recording: OpenRecording | None) -> CycleDocument | None:
        """The recording's document, made empty when no model has found its cycles yet (so cycles can be
        added or imported before any model ran)."""
        if recording is None:
            return None
        if recording.path not in self.documents:
            self._add_document(CycleDocument(recording.path, recording.duration, recording.sample_rate, [], "none",
                                             recording.annotation_digest, self))
            if self.current is recording:
                self.editor.set_document(self.documents[recording.path])
                self.undo_group.setActiveStack(self.documents[recording.path].undo_stack)
        return self.documents[recording.path]

    def current_document(self) -> CycleDocument | None:
        return self.document_for(self.current)

    def model_folders(self) -> list[Path]:
        """The models whose predictions the open recordings need: the chosen one, and its teachers when shown."""
        return ([self.model_folder] if self.model_folder else []) + (self.teacher_folders if self.show_teachers
                                                                      else [])

    def _document_edited(self, document: CycleDocument) -> None:
        if document.audio_path == getattr(self.current, "path", None):
            self._pending_selection = list(document.selection_hint)

    def _state_changed(self, document: CycleDocument) -> None:
        if document.audio_path in self.recordings:
            self.recording_list.show_result(self.recordings[document.audio_path], document, self.model_folder)
        self.documents_changed.emit()

    def _document_changed(self, document: CycleDocument) -> None:
        self.predictions.request([document], self.model_folders())
        self._state_changed(document)
        if document.audio_path == getattr(self.current, "path", None):
            if self._pending_selection is not None:
                self._redraw()  # an edit: shown at once, with what it selected
            else:
                self._schedule_redraw()  # predictions: however many arrive, one redraw

    def _schedule_redraw(self) -> None:
        self._redraw_timer.start()  # once per turn of the event loop, however many changes came

    def _redraw(self) -> None:
        """The current recording's cycles again, keeping the selection (or taking the one an edit left)."""
        if self.current is None:
            return
        selection = self._pending_selection if self._pending_selection is not None else self.table.selected_cycles()
        self._pending_selection = None
        cycles = self.shown_cycles()
        self.view.set_analysis(cycles, edited=self._edited())
        self._show_table_and_notice(cycles)
        self.table.select_cycles(selection)
        current = self.table.current_cycle()
        self.view.select_cycle(current)
        self.selection_changed.emit()

    def _document_on_screen(self) -> CycleDocument | None:
        """The current recording's document, if it has one yet (`current_document` makes one)."""
        return self.documents.get(self.current.path) if self.current else None

    def shown_cycles(self):
        document = self._document_on_screen()
        return document.shown(self.model_folder) if document else []

    def current_analysis(self) -> RecordingAnalysis | None:
        """The chosen model's analysis of the current recording as it stands, edits included."""
        document = self._document_on_screen()
        return document.analysis(self.model_folder) if document else None

    def _edited(self) -> bool:
        document = self._document_on_screen()
        return document is not None and document.cycle_source == EDITED

    def _show_table_and_notice(self, cycles) -> None:
        analysis = self.current_analysis()
        self.table.show_cycles(cycles, self.teacher_probabilities(),
                               distance_limit=analysis.distance_limit if analysis else None)
        self._show_notice(analysis)

    def teacher_probabilities(self) -> list | None:
        """Per cycle of the current recording, each teacher's probabilities (None until all have voted);
        None when the teachers are not shown."""
        document = self._document_on_screen()
        if not self.show_teachers or not self.teacher_folders or document is None:
            return None
        return [document.teacher_probabilities(self.teacher_folders, span) for span in document.spans]

    def set_show_teachers(self, shown: bool) -> None:
        self.show_teachers = shown and bool(self.teacher_folders)
        if self.show_teachers:
            self.predictions.request(list(self.documents.values()), self.teacher_folders, "Teacher votes")
        self._schedule_redraw()

    def show_recording(self, path: Path) -> None:
        recording = self.recordings.get(path)
        if recording is None:
            return
        self.player.stop()
        self.current = recording
        document = self.documents.get(path)
        self.editor.set_document(document)
        self.undo_group.setActiveStack(document.undo_stack if document else None)
        self.stack.setCurrentWidget(self.plots_and_table)
        cycles = self.shown_cycles()
        self.view.show_recording(recording, self.settings, cycles, edited=self._edited())
        self._show_table_and_notice(cycles)
        self._refresh_spectrogram()
        self.selection_changed.emit()

    def remove_current(self) -> None:
        """Closes the current recording (its unsaved edits are the caller's to ask about)."""
        path = self.recording_list.current_path()
        if path is None:
            return
        self.player.stop()
        self.recordings.pop(path, None)
        self._drop_document(path)
        self.recording_list.remove(path)
        self.current = None
        if not self.recordings:
            self.stack.setCurrentIndex(0)
            self.table.show_cycles([])
            self._show_notice(None)
        self.selection_changed.emit()
        self.documents_changed.emit()

    # ---------------------------------------------------------------- annotation files changed by others

    def _disk_changed(self, changed: str) -> None:
        """An annotation file of an open recording changed on disk: say so (saving will not overwrite it)."""
        watched = set(self.watcher.files())
        for document in self.documents.values():
            path = document.annotation_path
            if str(path) != changed and str(path.parent) != changed:
                continue
            if path.exists() and str(path) not in watched:
                self.watcher.addPath(str(path))  # a file replaced by rename is watched anew
            if file_digest(path) != document.disk_digest and not document.changed_on_disk:
                document.changed_on_disk = True
                self.status.emit(printable(f"{path.name} changed on disk after it was opened here; saving will ask "
                                           "before overwriting it."))
                document.state_changed.emit()

    def _show_notice(self, analysis: RecordingAnalysis | None) -> None:
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

    def _table_selected(self, index: int) -> None:
        """A selection made in the table (perhaps of several rows): the plot shows the current one."""
        self.view.select_cycle(index)
        self.selection_changed.emit()

    def selected_cycles(self) -> list[int]:
        return self.table.selected_cycles()

    def step_cycle(self, step: int) -> None:
        cycles = self.view.cycles
        if cycles:
            index = self.table.current_cycle()
            target = (0 if step > 0 else len(cycles) - 1) if index is None else index + step
            self.select_cycle(min(max(target, 0), len(cycles) - 1))

    def play_cycle(self, index: int) -> None:
        self.select_cycle(index)
        cycle = self.view.cycles[index]
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

    def go_to(self, path: Path, seconds: float) -> int | None:
        """Shows the recording and selects its cycle at `seconds` (the review queue's steps)."""
        if self.current is None or self.current.path != path:
            item = self.recording_list.item_for(path)
            if item is None:
                return None
            self.recording_list.setCurrentItem(item)
        index = self.view.cycle_at(seconds)
        if index is not None:
            self.select_cycle(index)
        return index

    def analyses(self) -> list[RecordingAnalysis]:
        """Each recording the chosen model analysed, as it stands, edits included (cycles the model has not
        seen yet are left out until it has)."""
        analyses = (document.analysis(self.model_folder) for document in self.documents.values())
        return [analysis for analysis in analyses if analysis is not None]

    def export_csv(self, path: Path) -> None:
        analyses = self.analyses()
        write_csv(analyses, path)
        self.status.emit(f"Wrote {sum(len(a.cycles) for a in analyses)} cycles to {path}")
