"""Keeps the open recordings' predictions in step with their edited cycles: the spans a model (the chosen
one, or an experiment's teachers) has not seen yet go to the engine, one queued task per recording and
model, and the answers go back to the recording's CycleDocument, which redraws."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from lungkd.core.text import printable

from .annotation_editing import CycleDocument
from .engine import EngineTask, TaskQueue
from .recording_jobs import Analysed, FailedRecording, ModelCache, OpenRecording, reanalyse_job


class PredictionUpdates(QObject):
    failed = Signal(str, str)  # message, details

    def __init__(self, queue: TaskQueue, models: ModelCache, recordings: dict[Path, OpenRecording],
                 documents: dict[Path, CycleDocument], parent: QObject | None = None):
        super().__init__(parent)
        self.queue = queue
        self.models = models
        self.recordings = recordings  # the page's: the decoded audio the predictions are made from
        self.documents = documents  # the page's: a closed recording is no longer asked about
        self._queued: set[tuple[Path, Path]] = set()  # (recording, model) with a task on its way
        self._failed: dict[tuple[Path, Path], list] = {}  # the spans that failed: not asked again unchanged

    def request(self, document: CycleDocument, model_folders: list[Path], title: str = "Predicting edited cycles"
                ) -> list[EngineTask]:
        """Queues what each model has not predicted yet; a model already busy with this recording is asked
        again when its answer arrives (the cycles may have changed meanwhile)."""
        tasks = []
        for folder in model_folders:
            job_key = (document.audio_path, Path(folder))
            spans = document.missing_spans(folder)
            if not spans or job_key in self._queued or self._failed.get(job_key) == spans:
                continue
            self._queued.add(job_key)
            recording = self.recordings[document.audio_path]
            task = EngineTask(reanalyse_job([(recording, spans)], Path(folder), self.models), title)
            task.partial.connect(lambda result, d=document, k=job_key, s=spans: self._answer(d, k, s, result))
            task.done.connect(lambda d=document, k=job_key: self._done(d, k))
            task.cancelled.connect(lambda k=job_key, s=spans: self._cancelled(k, s))
            tasks.append(self.queue.submit(task))
        return tasks

    def forget_failures(self) -> None:
        """Cancelled and failed spans may be asked for again (the user chose a model anew)."""
        self._failed.clear()

    def _answer(self, document: CycleDocument, job_key, spans, result) -> None:
        if isinstance(result, Analysed):
            document.add_predictions(result.model_folder, result.analysis)
        elif isinstance(result, FailedRecording):
            self._failed[job_key] = spans
            self.failed.emit(printable(f"Could not predict the edited cycles of {result.path.name}: {result.message}"),
                             result.details)

    def _cancelled(self, job_key, spans) -> None:
        """Cancelled (Esc), or dropped from the queue before it started: not asked again until the cycles
        change or the model does."""
        self._queued.discard(job_key)
        self._failed[job_key] = spans

    def _done(self, document: CycleDocument, job_key) -> None:
        self._queued.discard(job_key)
        if self.documents.get(document.audio_path) is document:
            self.request(document, [job_key[1]])
