"""The Studio's session, the model behind its pages: the open recordings (decoded once) and their
CycleDocuments, the chosen model and its teachers, the current recording, the undo group over the documents'
undo stacks and the watch on their annotation files. It holds no widget: the Recordings page, the editing
controllers and the window read it and observe its signals, and its engine work (opening, analysing,
predicting edited cycles) goes through the window's task queue.

Each analysed recording's cycles live in one CycleDocument (cycle_document.py): the plots, the table,
the review queue and the saver all read it, and every edit goes through its undo stack."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal
from PySide6.QtGui import QUndoGroup

from lungkd.core.analysis.batch import Failure
from lungkd.core.analysis.predict import RecordingAnalysis, write_csv
from lungkd.core.analysis.segmentation import FIXED_WINDOWS, Segmentation
from lungkd.core.data.annotation_io import file_digest
from lungkd.core.errors import LungKDError
from lungkd.core.kd.store import teachers_for_model
from lungkd.core.models.card import read_model_card
from lungkd.core.models.inference import input_contract
from lungkd.core.text import printable

from ..engine import EngineTask, TaskQueue
from .analysis_process import shared_analyses
from .cycle_document import CycleDocument, ShownCycle
from .jobs import Analysed, OpenRecording, open_job, reanalyse_job, segment_job
from .prediction_updates import PredictionUpdates
from .spectrogram_settings import SpectrogramSettings


def reads_prompts(model_folder: Path) -> bool:
    """Whether the model's input holds a prompt built from the patient metadata (BTS)."""
    try:
        card = read_model_card(model_folder)
    except LungKDError:
        return False
    return card is not None and input_contract(card).prompts is not None


class Session(QObject):
    status = Signal(str)  # a sentence for the status bar
    error = Signal(str, str)  # message, details
    recording_changed = Signal(object)  # an OpenRecording opened, opened again or analysed by a model now
    recording_failed = Signal(object)  # a Failure: the file could not be opened, or was left out
    recording_removed = Signal(object)  # the Path of a recording closed
    current_changed = Signal()  # another recording is current, or a new analysis of it
    model_changed = Signal()  # another model was chosen, and with it its teachers
    teachers_changed = Signal()  # the teachers' votes are shown, or hidden
    document_changed = Signal(object)  # a CycleDocument's cycles or predictions changed
    document_edited = Signal(object)  # an edit on it was done, undone or redone: select what it left selected
    document_state_changed = Signal(object)  # it was saved or edited, or its file changed on disk
    documents_changed = Signal()  # any document changed or was closed: unsaved marks and actions may change

    def __init__(self, queue: TaskQueue, parent: QObject | None = None):
        super().__init__(parent)
        self.queue = queue
        self.recordings: dict[Path, OpenRecording] = {}
        self.documents: dict[Path, CycleDocument] = {}
        self.current: OpenRecording | None = None
        self.model_folder: Path | None = None
        self.teacher_folders: list[Path] = []  # the chosen model's experiment's teachers, when it is a student
        self.show_teachers = False
        self.analysis_helper = shared_analyses()
        self.undo_group = QUndoGroup(self)
        self.predictions = PredictionUpdates(queue, self.analysis_helper, self.recordings, self.documents, self)
        self._documents_changed_later = QTimer(self, singleShot=True, interval=0)
        self._documents_changed_later.timeout.connect(self.documents_changed)
        self.predictions.failed.connect(self.error)
        self.watcher = QFileSystemWatcher(self)  # annotation files (and their folders) changed by others
        self.watcher.fileChanged.connect(self._disk_changed)
        self.watcher.directoryChanged.connect(self._disk_changed)

    # ---------------------------------------------------------------- opening and analysing

    def open(self, files: list[Path], left_out: list[Failure], settings: SpectrogramSettings) -> EngineTask:
        """Decodes, draws and analyses the files with the chosen model in the engine; each arrives as
        `recording_changed`, after the `recording_failed` of what `expand_recordings` left out."""
        return self._submit(EngineTask(open_job(files, self.model_folder, settings, self.analysis_helper, left_out),
                                       "Opening recordings"))

    def _submit(self, task: EngineTask) -> EngineTask:
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
        if folder is not None:
            self.analysis_helper.prepare(folder)
            unanalysed = [(recording, None) for path, recording in self.recordings.items()
                          if path not in self.documents]
            if unanalysed:
                self._submit(EngineTask(reanalyse_job(unanalysed, folder, self.analysis_helper), "Analysing"))
            self.predictions.request(list(self.documents.values()), [folder], "Analysing")
        self.model_changed.emit()

    def set_show_teachers(self, shown: bool) -> None:
        self.show_teachers = shown and bool(self.teacher_folders)
        if self.show_teachers:
            self.predictions.request(list(self.documents.values()), self.teacher_folders, "Teacher votes")
        self.teachers_changed.emit()

    def patient_changed(self, path: Path) -> None:
        """The recording's patient metadata was saved: every model whose prompts read it predicts its cycles again
        (the chosen one and its teachers at once, the others when chosen again); a recording its sidecar kept
        from being analysed is analysed now."""
        recording = self.recordings.get(path)
        if recording is None:
            return
        self.predictions.forget_failures(path)
        document = self.documents.get(path)
        if document is None:
            if self.model_folder is not None:
                self._submit(EngineTask(reanalyse_job([(recording, None)], self.model_folder, self.analysis_helper),
                                        "Analysing"))
            return
        readers = [folder for folder in {*document.predictions, *self.model_folders()} if reads_prompts(folder)]
        if readers:
            document.forget_predictions(readers)  # its `changed` asks the chosen model and teachers again

    def model_folders(self) -> list[Path]:
        """The models whose predictions the open recordings need: the chosen one, and its teachers when shown."""
        return ([self.model_folder] if self.model_folder else []) + (self.teacher_folders if self.show_teachers
                                                                      else [])

    def _result(self, result) -> None:
        if isinstance(result, OpenRecording):
            self.recordings[result.path] = result
            if result.analysis is not None:
                self._adopt_analysis(result.path, result.model_folder, result.analysis, result.annotation_digest)
        elif isinstance(result, Failure):
            if result.path not in self.documents or not self.documents[result.path].modified:
                self.recordings.pop(result.path, None)
                self._drop_document(result.path)
            # printable: Qt cuts a text at a name's byte that is not UTF-8; it is shown as U+FFFD instead
            self.status.emit(printable(f"Could not open {result.path.name}: {result.message}"))
            self.recording_failed.emit(result)
            return
        elif isinstance(result, Analysed):  # a recording opened without a model, now analysed
            if result.path not in self.recordings:  # removed meanwhile
                return
            recording = self.recordings[result.path]
            recording.analysis, recording.notice = result.analysis, result.notice
            if result.analysis is not None:  # None: its sidecar could not be read (the notice says why)
                self._adopt_analysis(result.path, result.model_folder, result.analysis, result.annotation_digest)
            result = recording
        else:
            return
        self.recording_changed.emit(result)

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

    # ---------------------------------------------------------------- the current recording and the documents

    def set_current(self, path: Path) -> None:
        """Makes the open recording at `path` the one on screen (again: a new analysis of it is shown anew)."""
        recording = self.recordings.get(path)
        if recording is None:
            return
        self.current = recording
        document = self.documents.get(path)
        self.undo_group.setActiveStack(document.undo_stack if document else None)
        self.current_changed.emit()

    def close(self, path: Path) -> None:
        """Closes the recording (its unsaved edits are the caller's to ask about)."""
        self.recordings.pop(path, None)
        self._drop_document(path)
        if self.current is not None and self.current.path == path:
            self.current = None
        self.recording_removed.emit(path)
        self.documents_changed.emit()

    def _add_document(self, document: CycleDocument) -> CycleDocument:
        self.documents[document.audio_path] = document
        self.undo_group.addStack(document.undo_stack)
        document.changed.connect(lambda d=document: self._document_changed(d))
        document.state_changed.connect(lambda d=document: self._state_changed(d))
        document.edited.connect(lambda d=document: self.document_edited.emit(d))
        self.watcher.addPath(str(document.audio_path.parent))
        if document.annotation_path.exists():
            self.watcher.addPath(str(document.annotation_path))
        return document

    def _drop_document(self, path: Path) -> None:
        document = self.documents.pop(path, None)
        if document is not None:
            self.undo_group.removeStack(document.undo_stack)
            document.deleteLater()

    def document_for(self, recording: OpenRecording | None) -> CycleDocument | None:
        """The recording's document, made empty when no model has found its cycles yet (so cycles can be
        added or imported before any model ran)."""
        if recording is None:
            return None
        if recording.path not in self.documents:
            self._add_document(CycleDocument(recording.path, recording.duration, recording.sample_rate, [], "none",
                                             recording.annotation_digest, self))
            if self.current is recording:
                self.undo_group.setActiveStack(self.documents[recording.path].undo_stack)
        return self.documents[recording.path]

    def current_document(self) -> CycleDocument | None:
        """The current recording's document to edit (made empty when it has none yet)."""
        return self.document_for(self.current)

    def current_document_or_none(self) -> CycleDocument | None:
        """The current recording's document, if it has one yet."""
        return self.documents.get(self.current.path) if self.current else None

    def _document_changed(self, document: CycleDocument) -> None:
        self.predictions.request([document], self.model_folders())
        self.document_changed.emit(document)
        # the menus, the edit and review bars: in the next turn of the event loop, once however many changes came in
        # this one (an edit and the predictions that follow it); the redraw comes first
        self._documents_changed_later.start()

    def _state_changed(self, document: CycleDocument) -> None:
        self.document_state_changed.emit(document)
        self.documents_changed.emit()

    def _disk_changed(self, changed: str) -> None:
        """An annotation file of an open recording changed on disk: say so (saving will not overwrite it)."""
        watched = set(self.watcher.files())
        for document in self.documents.values():
            path = document.annotation_path
            if str(path) != changed and str(path.parent) != changed:
                continue
            if path.exists() and str(path) not in watched:
                self.watcher.addPath(str(path))  # a file replaced by rename is watched anew
            if _digest_or_none(path) != document.disk_digest and not document.changed_on_disk:
                document.changed_on_disk = True
                self.status.emit(printable(f"{path.name} changed on disk after it was opened here; saving will ask "
                                           "before overwriting it."))
                document.state_changed.emit()

    # ---------------------------------------------------------------- steering the automatic segmentation

    def segment_again(self, document: CycleDocument, period: float) -> EngineTask:
        """Segments the recording again at the breathing period `period` (s) in the engine; the cycles found
        replace the document's as one edit."""
        task = EngineTask(segment_job(self.recordings[document.audio_path], period, self.analysis_helper),
                          printable(f"Segmenting {document.name} again"))
        task.finished.connect(lambda segmentation: self._segmented_again(document, period, segmentation))
        task.failed.connect(self.error)
        return self.queue.submit(task)

    def _segmented_again(self, document: CycleDocument, period: float, segmentation: Segmentation) -> None:
        if self.documents.get(document.audio_path) is not document:  # closed or opened anew meanwhile
            return
        document.follow_segmentation(segmentation, f"Segment again at a {period:g} s breathing period")
        found = (f"no cycles at that period, {segmentation.reason}: fixed windows instead"
                 if segmentation.method == FIXED_WINDOWS else f"{len(segmentation.cycles)} cycles")
        self.status.emit(printable(f"{document.name} segmented again at a {period:g} s breathing period: {found}."))

    # ---------------------------------------------------------------- what the views show

    def shown_cycles(self) -> list[ShownCycle]:
        """The current recording's cycles with the chosen model's predictions."""
        document = self.current_document_or_none()
        return document.shown(self.model_folder) if document else []

    def current_analysis(self) -> RecordingAnalysis | None:
        """The chosen model's analysis of the current recording as it stands, edits included."""
        document = self.current_document_or_none()
        return document.analysis(self.model_folder) if document else None

    def teacher_probabilities(self) -> list | None:
        """Per cycle of the current recording, each teacher's probabilities (None until all have voted);
        None when the teachers are not shown."""
        document = self.current_document_or_none()
        if not self.show_teachers or not self.teacher_folders or document is None:
            return None
        return [document.teacher_probabilities(self.teacher_folders, span) for span in document.spans]

    def analyses(self) -> list[RecordingAnalysis]:
        """Each recording the chosen model analysed, as it stands, edits included (cycles the model has not
        seen yet are left out until it has)."""
        analyses = (document.analysis(self.model_folder) for document in self.documents.values())
        return [analysis for analysis in analyses if analysis is not None]

    def has_analyses(self) -> bool:
        """Whether `analyses` holds any, without working them out."""
        folder = self.model_folder
        return folder is not None and any(document.model_analyses.get(Path(folder)) is not None
                                          for document in self.documents.values())

    def export_csv(self, path: Path) -> None:
        analyses = self.analyses()
        write_csv(analyses, path)
        self.status.emit(f"Wrote {sum(len(a.cycles) for a in analyses)} cycles to {path}")


def _digest_or_none(path: Path) -> str | None:
    """The annotation's digest as it is now; None when it cannot be read (it became a pipe, grew too large...):
    either way not the file that was opened."""
    try:
        return file_digest(path)
    except LungKDError:
        return None
