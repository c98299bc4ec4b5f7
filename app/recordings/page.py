"""The Recordings page: open recordings on the left; waveform, cycle track and spectrogram above the cycle
table on the right. It lays out and wires the views of the session (session.py), which holds what is open;
everything slow (decoding, spectrograms, analysis, explaining a cycle's class) runs in the engine thread."""
from __future__ import annotations

import html
from collections import deque
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import QLabel, QListWidgetItem, QSplitter, QStackedWidget, QVBoxLayout, QWidget

from lungkd.core.analysis.batch import expand_recordings
from lungkd.core.analysis.predict import EDITED, RecordingAnalysis

from ..engine import EngineTask
from .cycle_document import CycleDocument
from .cycle_table import CycleTable
from .explanation_overlay import ExplanationOverlay
from .jobs import OpenRecording, explain_job, spectrogram_job
from .patient_panel import PatientPanel
from .playback import Player
from .recording_list import RecordingList
from .recording_view import RecordingView
from .session import Session
from .spectrogram_settings import SpectrogramBar, SpectrogramSettings
from .words import OUTSIDE

PLACEHOLDER = ("<p style='font-size:15pt; color:#3a404b'>Drop lung-sound recordings here</p>"
               "<p style='color:#6e747e'>wav, flac or ogg files, or folders of them — or press Ctrl+O.<br>"
               "Cycles come from the annotation file beside a recording when there is one.</p>")


class RecordingsPage(QWidget):
    selection_changed = Signal()  # another recording or cycle: actions may change state

    def __init__(self, session: Session, store: QSettings, player: Player, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("page")
        self.session = session
        self.store = store
        self.player = player
        self.settings = SpectrogramSettings.load(store)
        self.show_first: Path | None = None  # the first recording of the last open, shown as soon as it is read

        self.recording_list = RecordingList()
        self.spectrogram_bar = SpectrogramBar(self.settings)
        self.view = RecordingView()
        self._cycle_table = CycleTable()
        self.patient = PatientPanel()
        self.bars = QVBoxLayout()  # the edit and review bars (editing/annotation_actions.py, review_mode.py)
        self.bars.setContentsMargins(0, 0, 0, 0)
        self.bars.setSpacing(2)
        self.notice = QLabel(objectName="notice", wordWrap=True, visible=False)
        self.explanation = ExplanationOverlay(self.view)
        self.explanation_caption = QLabel(objectName="hint", wordWrap=True, visible=False)
        self.explaining: EngineTask | None = None
        self._layout()
        self._redraw_timer = QTimer(self, singleShot=True, interval=0)
        self._redraw_timer.timeout.connect(self._redraw)
        # an edit's own redraw comes first; the recording list's summary follows in the next turn of the event loop
        self._summaries_due: set[Path] = set()
        self._summary_timer = QTimer(self, singleShot=True, interval=0)
        self._summary_timer.timeout.connect(self._show_due_summaries)
        self._pending_selection: list[int] | None = None
        # a recording shown anew comes in turns of the event loop (plots, notice, table), so that not even an
        # hour's recording holds the window long; whatever reads the page finishes them first (finish_showing)
        self._pieces_due: deque[Callable[[], None]] = deque()
        self._piece_timer = QTimer(self, singleShot=True, interval=0)
        self._piece_timer.timeout.connect(self._show_next_piece)

        self.recording_list.recording_chosen.connect(session.set_current)
        self.recording_list.failure_activated.connect(lambda f: session.error.emit(f"{f.path.name}: {f.message}",
                                                                                   f.details))
        self.spectrogram_bar.changed.connect(self.apply_settings)
        self.view.cycle_clicked.connect(self.select_cycle)
        self.view.cycle_double_clicked.connect(self.play_cycle)
        self._cycle_table.cycle_selected.connect(self._table_selected)
        self._cycle_table.cycle_activated.connect(self.play_cycle)
        self._cycle_table.label_chosen.connect(lambda row, label: session.current_document().set_labels({row: label}))
        self.patient.saved.connect(session.patient_changed)
        self.player.position.connect(self.view.set_play_position)
        session.recording_changed.connect(self._recording_changed)
        session.recording_failed.connect(self.recording_list.show_result)
        session.recording_removed.connect(self._recording_removed)
        session.current_changed.connect(self._show_current)
        session.model_changed.connect(self._schedule_redraw)
        session.teachers_changed.connect(self._schedule_redraw)
        session.document_changed.connect(self._document_changed)
        session.document_state_changed.connect(self._show_summary)
        session.document_edited.connect(self._document_edited)

    def _layout(self) -> None:
        right = QWidget()
        column = QVBoxLayout(right)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.spectrogram_bar)
        column.addLayout(self.bars)
        column.addWidget(self.notice)
        column.addWidget(self.explanation_caption)
        self.plots_and_table = QSplitter(Qt.Orientation.Vertical)
        self.plots_and_table.addWidget(self.view)
        self.plots_and_table.addWidget(self._cycle_table)
        self.plots_and_table.setStretchFactor(0, 3)
        self.plots_and_table.setStretchFactor(1, 1)
        self.plots_and_table.setSizes([560, 220])
        self.stack = QStackedWidget()  # the invitation to drop files until a recording is open
        self.placeholder = QLabel(PLACEHOLDER, alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True)
        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(self.plots_and_table)
        column.addWidget(self.stack, 1)
        left = QSplitter(Qt.Orientation.Vertical)  # the recordings, and the patient of the one on screen
        left.addWidget(self.recording_list)
        left.addWidget(self.patient)
        left.setStretchFactor(0, 1)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([300, 1100])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(splitter)

    # ---------------------------------------------------------------- opening, the session's changes

    def open_paths(self, paths: list[Path]) -> EngineTask | None:
        files, left_out = expand_recordings([Path(p) for p in paths])
        if not files:
            reason = "Nothing to open: " + " ".join(f.text for f in left_out) if left_out else \
                "No wav, flac or ogg files there."
            self.session.status.emit(reason)
            if not self.session.recordings:  # the empty page says it too, where the user is looking
                self.placeholder.setText(PLACEHOLDER + f"<p style='color:#c0392b'>{html.escape(reason)}</p>")
            return None
        self.placeholder.setText(PLACEHOLDER)
        self.show_first = files[0]  # the first of what was opened (dropped, say) is shown, wherever it is listed
        return self.session.open(files, left_out, self.settings)

    def _recording_changed(self, recording: OpenRecording) -> None:
        """Listed with its summary; shown when no other recording is, or when it is the one on screen."""
        item = self._show_summary(recording)
        current = self.session.current
        if recording.path == self.show_first:
            self.show_first = None
            current = None
        if current is None or current.path == recording.path:
            if self.recording_list.currentItem() is item:  # new analysis of the recording on screen
                self.session.set_current(recording.path)
            else:
                self.recording_list.setCurrentItem(item)  # shows it

    def _show_summary(self, what: OpenRecording | CycleDocument) -> QListWidgetItem | None:
        """The recording's entry in the list, for the recording itself or a change of its document."""
        recording = self.session.recordings.get(what.path if isinstance(what, OpenRecording) else what.audio_path)
        if recording is not None:
            return self.recording_list.show_result(recording, self.session.documents.get(recording.path),
                                                   self.session.model_folder)

    def _show_due_summaries(self) -> None:
        due, self._summaries_due = self._summaries_due, set()
        for path in due:
            document = self.session.documents.get(path)
            if document is not None:
                self._show_summary(document)

    def _recording_removed(self, path: Path) -> None:
        self.player.stop()
        self.recording_list.remove(path)  # the list's next recording becomes the current one
        if not self.session.recordings:
            self._stop_showing()
            self.stack.setCurrentIndex(0)
            self._cycle_table.show_cycles([])
            self._show_notice(None)
            self.patient.show_recording(None)
        self.selection_changed.emit()

    def _document_edited(self, document: CycleDocument) -> None:
        if document.audio_path == getattr(self.session.current, "path", None):
            self._pending_selection = list(document.selection_hint)

    def _document_changed(self, document: CycleDocument) -> None:
        self._summaries_due.add(document.audio_path)
        self._summary_timer.start()
        shown = self.explanation.explanation
        if shown is not None and document.audio_path == getattr(self.session.current, "path", None) and \
                (shown.start, shown.end) not in {(s.start, s.end) for s in document.spans}:
            self._clear_explanation()  # the cycle it explained was edited away
        if document.audio_path == getattr(self.session.current, "path", None):
            if self._pending_selection is not None:
                self._redraw()  # an edit: shown at once, with what it selected
            else:
                self._schedule_redraw()  # predictions: however many arrive, one redraw

    def _schedule_redraw(self) -> None:
        self._redraw_timer.start()  # once per turn of the event loop, however many changes came

    def _redraw(self) -> None:
        """The current recording's cycles again, keeping the selection (or taking the one an edit left)."""
        if self.session.current is None:
            return
        selection = self._pending_selection if self._pending_selection is not None else self.table.selected_cycles()
        self._pending_selection = None
        cycles = self.session.shown_cycles()
        self.view.set_analysis(cycles, edited=self._edited(), phase_note=self._phase_note())
        self._show_table(cycles)
        self._show_notice_and_panels()
        self.table.select_cycles(selection)
        current = self.table.current_cycle()
        self.view.select_cycle(current)
        self.selection_changed.emit()

    def _edited(self) -> bool:
        document = self.session.current_document_or_none()
        return document is not None and document.cycle_source == EDITED

    def _phase_note(self) -> str:
        document = self.session.current_document_or_none()
        return document.phase_note if document else ""

    @property
    def table(self) -> CycleTable:
        """The cycle table, with the recording on screen in it (see finish_showing)."""
        self.finish_showing()
        return self._cycle_table

    def _show_table(self, cycles) -> None:
        analysis = self.session.current_analysis()
        self._cycle_table.show_cycles(cycles, self.session.teacher_probabilities(),
                                      distance_limit=analysis.distance_limit if analysis else None)

    def _show_notice_and_panels(self) -> None:
        analysis = self.session.current_analysis()
        self._show_notice(analysis)
        self.patient.show_analysis(analysis)
        self.view.show_prompt(analysis.prompt if analysis else None)

    def _show_current(self) -> None:
        """The recording chosen, in pieces: its plots, then what the model made of it, then its table."""
        self.player.stop()
        self._clear_explanation()
        self.patient.show_recording(self.session.current.path)
        self._stop_showing()  # what was still to come of the last one
        self._pieces_due.extend([self._show_plots, self._show_notice_and_panels, self._show_table_and_selection])
        self._piece_timer.start()

    def _show_plots(self) -> None:
        self.stack.setCurrentWidget(self.plots_and_table)
        self.view.show_recording(self.session.current, self.settings, self.session.shown_cycles(),
                                 edited=self._edited(), phase_note=self._phase_note())
        self._refresh_spectrogram()

    def _show_table_and_selection(self) -> None:
        self._show_table(self.session.shown_cycles())
        self.selection_changed.emit()

    def _show_next_piece(self) -> None:
        if self._pieces_due:
            self._pieces_due.popleft()()
        if self._pieces_due:
            self._piece_timer.start()

    @property
    def showing(self) -> bool:
        """Pieces of the recording on screen are still to be shown (in the next turns of the event loop)."""
        return bool(self._pieces_due)

    def finish_showing(self) -> None:
        """Shows at once what is still to come of the recording on screen: for whatever reads the page."""
        self._piece_timer.stop()
        while self._pieces_due:
            self._pieces_due.popleft()()

    def _stop_showing(self) -> None:
        self._piece_timer.stop()
        self._pieces_due.clear()

    def remove_current(self) -> None:
        """Closes the recording chosen in the list (its unsaved edits are the caller's to ask about)."""
        path = self.recording_list.current_path()
        if path is not None:
            self.session.close(path)

    def _show_notice(self, analysis: RecordingAnalysis | None) -> None:
        """Above the predictions, what must be known before trusting them: whether the recording (or some of its
        cycles) is unlike the model's training data, and what the model's card warns of."""
        lines = list(analysis.model_warnings) if analysis else []
        unlike = [c for c in analysis.cycles if c.unlike_training] if analysis else []
        if analysis and analysis.unlike_training:
            lines.insert(0, f"<b>This recording is {OUTSIDE}</b> (median distance "
                            f"{analysis.training_distance:.1f}, limit {analysis.distance_limit:.1f}): every prediction "
                            "on it is greyed and not to be trusted.")
        elif unlike:
            lines.insert(0, f"<b>{len(unlike)} of {len(analysis.cycles)} cycles are {OUTSIDE}</b>: their "
                            "predictions are greyed and not to be trusted.")
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
        recording = self.session.current
        if recording is None or recording.spectrogram.key == self.settings.image_key():
            return
        task = EngineTask(spectrogram_job(recording.samples, recording.sample_rate, self.settings), parent=self)
        task.finished.connect(lambda spectrogram: self._spectrogram_ready(recording, spectrogram))
        task.failed.connect(self.session.error)
        task.done.connect(task.deleteLater)
        task.start()

    def _spectrogram_ready(self, recording: OpenRecording, spectrogram) -> None:
        if spectrogram.key != self.settings.image_key():  # the settings moved on meanwhile
            return
        recording.spectrogram = spectrogram
        if recording is self.session.current:
            self.view.set_spectrogram(spectrogram)

    # ---------------------------------------------------------------- cycles: selection, playback

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
        self.finish_showing()
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
        if (recording := self.session.current) is not None:
            self.player.play(recording.samples, recording.sample_rate, start, end)

    def toggle_playback(self) -> None:
        """Stops, or plays the selected cycle (the visible part of the recording when none is selected)."""
        if self.player.is_playing():
            self.player.stop()
        elif self.table.current_cycle() is not None:
            self.play_cycle(self.table.current_cycle())
        elif self.session.current is not None:
            self.play(*self.view.visible_range())

    def go_to(self, path: Path, seconds: float) -> int | None:
        """Shows the recording and selects its cycle at `seconds` (the review queue's steps)."""
        if self.session.current is None or self.session.current.path != path:
            item = self.recording_list.item_for(path)
            if item is None:
                return None
            self.recording_list.setCurrentItem(item)
        index = self.cycle_at(seconds)
        if index is not None:
            self.select_cycle(index)
        return index

    def cycle_at(self, seconds: float) -> int | None:
        """The cycle of the recording on screen at `seconds`, if any."""
        self.finish_showing()
        return self.view.cycle_at(seconds)

    # ---------------------------------------------------------------- why this class

    def can_explain(self) -> bool:
        # while the table is still to come nothing is selected in it; asking would show it inside this call
        return self.session.model_folder is not None and self.session.current is not None and not self.showing and \
            self._cycle_table.current_cycle() is not None

    def explain_selected(self) -> EngineTask | None:
        """Explains the selected cycle's class in the engine (Esc cancels); drawn over the spectrogram when done."""
        index, recording, folder = self.table.current_cycle(), self.session.current, self.session.model_folder
        if index is None or recording is None or folder is None:
            self.session.status.emit("Select a cycle, with a model chosen, to see why it got its class.")
            return None
        cycle = self.view.cycles[index]
        task = EngineTask(explain_job(recording, folder, cycle.start, cycle.end),
                          f"Explaining cycle {index + 1}")
        task.finished.connect(lambda explanation: self._explained(recording, explanation))
        task.failed.connect(self.session.error)
        task.cancelled.connect(lambda: self.session.status.emit("The explanation was cancelled."))
        self.session.status.emit(f"Explaining why cycle {index + 1} got its class (Esc cancels)…")
        self.explaining = self.session.queue.submit(task)
        return task

    def _explained(self, recording: OpenRecording, explanation) -> None:
        if recording is not self.session.current:
            return  # another recording is on screen now
        self.explanation.show(explanation)
        self.explanation_caption.setText(self.explanation.caption())
        self.explanation_caption.setVisible(True)
        self.session.status.emit(self.explanation.caption())

    def _clear_explanation(self) -> None:
        self.explanation.clear()
        self.explanation_caption.setVisible(False)
