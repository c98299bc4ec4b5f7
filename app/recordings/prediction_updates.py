"""Keeps the open recordings' predictions in step with their edited cycles: the spans a model (the chosen
one, or an experiment's teachers) has not seen yet go to the engine, one queued task per model for the
recordings asked about, and the answers go back to each recording's CycleDocument, which redraws."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from lungkd.core.analysis.batch import Failure
from lungkd.core.text import printable

from ..engine import EngineTask, TaskQueue
from .cycle_document import CycleDocument
from .analysis_process import AnalysisProcess
from .jobs import Analysed, OpenRecording, reanalyse_job


class PredictionUpdates(QObject):
    failed = Signal(str, str)  # message, details

    def __init__(self, queue: TaskQueue, analyses: AnalysisProcess, recordings: dict[Path, OpenRecording],
                 documents: dict[Path, CycleDocument], parent: QObject | None = None):
        super().__init__(parent)
        self.queue = queue
        self.analyses = analyses
        self.recordings = recordings  # the session's: the decoded audio the predictions are made from
        self.documents = documents  # the session's: a closed recording is no longer asked about
        self._queued: set[tuple[Path, Path]] = set()  # (recording, model) with a task on its way
        self._failed: dict[tuple[Path, Path], list] = {}  # the spans that failed: not asked again unchanged

    def request(self, documents: list[CycleDocument], model_folders: list[Path],
                title: str = "Predicting edited cycles") -> list[EngineTask]:
        """Queues, as one task per model, what each model has not predicted yet of these recordings; a model
        already busy with a recording is asked again when its answer arrives (the cycles may have changed
        meanwhile)."""
        tasks = []
        for folder in map(Path, model_folders):
            asked: dict[Path, tuple[CycleDocument, list]] = {}  # by recording: its document and spans
            for document in documents:
                job_key = (document.audio_path, folder)
                spans = document.missing_spans(folder)
                if spans and job_key not in self._queued and self._failed.get(job_key) != spans:
                    asked[document.audio_path] = (document, spans, document.generation)
            if not asked:
                continue
            self._queued.update((path, folder) for path in asked)
            job = reanalyse_job([(self.recordings[path], spans) for path, (_, spans, _) in asked.items()], folder,
                                self.analyses)
            task = EngineTask(job, title)
            task.partial.connect(lambda result, f=folder, a=asked: self._answer(f, a, result))
            task.done.connect(lambda f=folder, a=asked: self._done(f, a))
            task.cancelled.connect(lambda f=folder, a=asked: self._cancelled(f, a))
            tasks.append(self.queue.submit(task))
        return tasks

    def forget_failures(self, recording: Path | None = None) -> None:
        """Cancelled and failed spans (of one recording, or all) may be asked for again: the user chose a model
        anew, or changed what the recording's predictions read."""
        self._failed = {key: spans for key, spans in self._failed.items()
                        if recording is not None and key[0] != recording}

    def _answer(self, folder: Path, asked: dict, result) -> None:
        document, spans, generation = asked[result.path]
        if document.generation != generation:
            return  # asked before its predictions were forgotten: the one asked for since will come
        if isinstance(result, Analysed) and result.analysis is not None:
            document.add_predictions(result.model_folder, result.analysis)
            return
        self._failed[(result.path, folder)] = spans  # a Failure, or a sidecar the analysis could not read
        message, details = (result.message, result.details) if isinstance(result, Failure) else (result.notice,) * 2
        self.failed.emit(printable(f"Could not predict the cycles of {result.path.name}: {message}"), details)

    def _cancelled(self, folder: Path, asked: dict) -> None:
        """Cancelled (Esc), or dropped from the queue before it started: not asked again until the cycles
        change or the model is chosen again."""
        for path, (_, spans, _) in asked.items():
            self._queued.discard((path, folder))
            self._failed[(path, folder)] = spans

    def _done(self, folder: Path, asked: dict) -> None:
        for path in asked:
            self._queued.discard((path, folder))
        self.request([document for path, (document, *_) in asked.items() if self.documents.get(path) is document],
                     [folder])
