"""The Studio's analyses (a recording opened, an edit's cycles predicted, a recording segmented again) run in one
helper process, not in the engine's thread. An analysis makes thousands of small numpy and torch calls, each
letting go of the interpreter's lock and taking it back at once, and the GUI thread waiting for that lock kept
losing the race: beside the 60-minute recording's analysis in a thread the window's timer came 32-93 ms late,
beside the same analysis in another process 4-10 ms (`python -m bench.gil_wait --minutes 60`, bench/README.md).

One helper serves the window's analyses, started first thing (or when a model is chosen) and kept; Analyse a folder
starts one of its own for its run, so that the window's analyses go on beside it. A helper holds the models it
loaded (loaded again when their folder's files change) and the samples of the last few recordings it analysed, so
an edit's prediction sends only its spans. A recording's samples travel once, through shared memory: numpy copies
them there without holding the lock, where pickling them through a pipe would hold it for the whole copy. Cancel
reaches the helper through a shared event. When no helper can start at all (a system that forbids it), the analyses
run in the calling thread instead, as they did before; a helper that started and then died (killed, out of memory,
a crash in a library) fails only the analysis it was doing, and the next one starts a new helper.

This module imports only the engine: the helper imports it too, and must not load Qt."""
from __future__ import annotations

import itertools
import logging
import queue
import threading
import weakref
from collections import OrderedDict
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from multiprocessing import shared_memory
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from lungkd.core.analysis.batch import Batch, Failure, Progress, analyse_folder
from lungkd.core.analysis.limits import UsableModel, load_model_with_limits
from lungkd.core.analysis.groundwork import segment_recording
from lungkd.core.analysis.predict import RecordingAnalysis, analyse_samples
from lungkd.core.analysis.results import AnalysedRecording, ResultsCache
from lungkd.core.analysis.segmentation import Segmentation
from lungkd.core.cancel import CancelToken
from lungkd.core.data.audio import DecodedAudio
from lungkd.core.errors import LungKDError
from lungkd.core.pool import spawn_context, spawn_pool

CANCEL_POLL_S = 0.05  # how often the waiting thread passes its cancel on to the helper and reads its reports
REPORTS_END_S = 10.0  # how long an ended job's last reports are waited for
RECORDINGS_HELD = 3  # recordings whose samples the helper keeps (an hour at 4 kHz: 57 MB)

Spans = list[tuple[float, float]] | None
SentSamples = tuple[str, tuple[int, ...], str]  # shared memory block's name, the array's shape and dtype
NO_HELPER = ("lungkd-studio: no helper process could start for the analyses; they run in the window's process, "
             "which may pause while they do.")
Report = Callable[[str, object], None]  # what a job reports as it goes: (kind, payload)
_JOB_ENDED = "job ended"  # the last report of every job in the helper, after all of its own


class _HelperWillNotStart(Exception):
    """No helper process could start here."""


class _HelperDied(Exception):
    """A helper that had started stopped during a job."""


class AnalysisProcess:
    """Analyses in the helper process, one at a time (the window's task queue runs its jobs in turn; the lock
    keeps any other caller waiting rather than sharing the helper's cancel)."""

    def __init__(self, start_pool: Callable[..., ProcessPoolExecutor] | None = None):
        """`start_pool(cancel, reports)`: the helper's pool, handed the event and queue it shares with this one."""
        self._start_pool = start_pool or (lambda *shared: spawn_pool(1, _set_up_helper, *shared))
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._helper_up: Future | None = None  # answers once the helper has started
        self._cancel = self._reports = None  # shared with the helper: made anew with each one
        self._jobs = itertools.count(1)
        self.helpers_start = False  # a helper has started here (a later one that dies is an error, not a reason)
        self.in_thread = False  # no helper could start here: analyses run in the calling thread
        self._tokens: dict[int, tuple[weakref.ref, int]] = {}  # id(DecodedAudio) -> (the object, its token)
        self._next_token = itertools.count(1)

    def analyse(self, path: Path, audio: DecodedAudio, model_folder: Path, cancel: CancelToken | None = None,
                spans: Spans = None) -> RecordingAnalysis:
        """`analyse_samples` of the recording with the model in `model_folder`, as if called here."""
        return self._run(Path(path), audio, cancel, None, _analysis, Path(model_folder), spans)

    def segment(self, path: Path, audio: DecodedAudio, period: float | None) -> Segmentation:
        """`segment_recording` of the recording at a breathing period, as if called here."""
        return self._run(Path(path), audio, None, None, _segmentation, period)

    def analyse_folder(self, folder: Path, glob: str | None, model_folder: Path, workspace: Path,
                       cancel: CancelToken | None, on_progress: Callable[[Progress], None],
                       on_result: Callable[[AnalysedRecording | Failure], None]) -> Batch:
        """`core.analysis.batch.analyse_folder` with the workspace's results cache, as if called here: progress and
        each recording's outcome reported as they come."""
        def report(kind: str, payload) -> None:
            (on_progress if kind == "progress" else on_result)(payload)
        return self._run(Path(folder), None, cancel, report, _folder_analysis, glob, Path(model_folder),
                         Path(workspace))

    def _run(self, subject: Path, audio: DecodedAudio | None, cancel: CancelToken | None, report: Report | None,
             work: Callable, *args):
        """`work(audio, cancel, report, subject, *args)`, a module-level function, in the helper (or here, where
        none starts); `subject` is the recording or folder it is about, `audio`, when given, the recording the job
        reads (sent to the helper once)."""
        report, args = report or _ignore, (subject, *args)
        with self._lock:
            if not self.in_thread:
                try:
                    return self._through_helper(audio, cancel, report, work, args)
                except _HelperWillNotStart:
                    self.in_thread = True
                    logging.getLogger(__name__).warning(NO_HELPER)
                except _HelperDied:
                    raise LungKDError("the helper process analysing recordings stopped (killed, or out of memory).",
                                      path=subject, fix="analyse it again: a new helper starts.") from None
            return work(audio, cancel, report, *args)

    def start(self) -> None:
        """Starts the helper without waiting for it (a new interpreter importing torch: seconds), so that the first
        analysis need not."""
        self._without_waiting(lambda pool: None)

    def prepare(self, model_folder: Path) -> None:
        """Starts the helper, if it is not, and has it load the model, without waiting."""
        self._without_waiting(lambda pool: pool.submit(_load_in_helper, Path(model_folder)))  # errors: at analysis

    def _without_waiting(self, then: Callable[[ProcessPoolExecutor], object]) -> None:
        if not self._lock.acquire(blocking=False):
            return  # an analysis is running: the helper is up
        try:
            if not self.in_thread:
                then(self._helper())
        except BrokenProcessPool:
            pass  # the next analysis finds out why
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None

    def _helper(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = spawn_context()  # a helper killed mid-report leaves nothing half-written for the next
            self._cancel, self._reports = context.Event(), context.Queue()
            self._pool = self._start_pool(self._cancel, self._reports)
            self._helper_up = self._pool.submit(_answer)
        return self._pool

    def _through_helper(self, audio: DecodedAudio | None, cancel: CancelToken | None, report: Report,
                        work: Callable, args: tuple):
        held = (self._token(audio), audio.sample_rate, audio.warnings) if audio is not None else None
        done, result = self._in_helper(held, None, work, args, cancel, report)
        if not done:  # the helper does not hold these samples (yet, or any more)
            with _shared(audio.samples) as sent:
                done, result = self._in_helper(held, sent, work, args, cancel, report)
        return result

    def _in_helper(self, held: tuple | None, sent: SentSamples | None, work: Callable, args: tuple,
                   cancel: CancelToken | None, report: Report) -> tuple[bool, object]:
        pool = self._helper()
        self._cancel.clear()
        try:
            if not self.helpers_start:
                self._wait(self._helper_up, cancel)
                self.helpers_start = True
            job = next(self._jobs)
            return self._wait(pool.submit(_job_in_helper, job, held, sent, work, args), cancel, (job, report))
        except BrokenProcessPool:
            pool.shutdown(wait=False)
            self._pool = None
            raise (_HelperDied if self.helpers_start else _HelperWillNotStart) from None

    def _wait(self, future: Future, cancel: CancelToken | None, reports: tuple[int, Report] | None = None):
        """The future's result, waited for without the interpreter's lock; meanwhile the job's reports are passed
        on, and so is a cancel (the helper raises Cancelled at its next step, and that comes back here)."""
        ended = reports is None
        while not future.done():
            try:
                future.result(timeout=CANCEL_POLL_S)
            except TimeoutError:
                if cancel is not None and cancel.is_set():
                    self._cancel.set()
            except Exception:
                break  # raised below, once the job's reports are read
            if not ended:
                ended = self._pass_reports(*reports, wait=False)
        if not ended and not isinstance(future.exception(), BrokenProcessPool):
            self._pass_reports(*reports, wait=True)
        return future.result()

    def _pass_reports(self, job: int, report: Report, wait: bool) -> bool:
        """The job's reports that have come, or (`wait`: it has ended) all of them, whose end follows the result by
        moments (the helper's queue writes from a thread of its own). Whether its end has come."""
        while True:
            try:
                sender, kind, payload = self._reports.get(timeout=REPORTS_END_S) if wait else \
                    self._reports.get_nowait()
            except queue.Empty:
                return False
            if sender != job:
                continue  # a late report of an earlier job, whose end did not come in time
            if kind == _JOB_ENDED:
                return True
            report(kind, payload)

    def _token(self, audio: DecodedAudio) -> int:
        """A number for these decoded samples, the same as long as the object lives (an id can be reused)."""
        held = self._tokens.get(id(audio))
        if held is not None and held[0]() is audio:
            return held[1]
        token = next(self._next_token)
        self._tokens = {key: value for key, value in self._tokens.items() if value[0]() is not None}
        self._tokens[id(audio)] = (weakref.ref(audio), token)
        return token


_models: dict[Path, tuple[tuple, UsableModel]] = {}  # by folder: (its files' state, the model)


def _folder_state(folder: Path) -> tuple:
    return tuple(sorted((p.name, s.st_size, s.st_mtime_ns) for p in folder.iterdir() if p.is_file()
                        for s in [p.stat()]))


def loaded_model(folder: Path) -> UsableModel:
    """The model in `folder` (with the limits its card stores), loaded once in this process while the folder's
    files stay as they are."""
    state = _folder_state(folder) if folder.is_dir() else ()
    held = _models.get(folder)
    if held is None or held[0] != state:
        _models[folder] = (state, load_model_with_limits(folder))
    return _models[folder][1]


_shared_analyses: AnalysisProcess | None = None


def shared_analyses() -> AnalysisProcess:
    """The application's one helper for analyses (windows and tests share it: each helper imports torch)."""
    global _shared_analyses
    if _shared_analyses is None:
        _shared_analyses = AnalysisProcess()
    return _shared_analyses


@contextmanager
def _shared(samples: np.ndarray) -> Iterator[SentSamples]:
    """The samples copied into a shared memory block for the helper, freed after the block."""
    block = shared_memory.SharedMemory(create=True, size=max(samples.nbytes, 1))
    try:
        view = np.ndarray(samples.shape, samples.dtype, buffer=block.buf)
        np.copyto(view, samples)
        del view  # the block cannot close while an array looks into it
        yield block.name, samples.shape, samples.dtype.str
    finally:
        block.close()
        block.unlink()


def _received(sent: SentSamples) -> np.ndarray:
    name, shape, dtype = sent
    block = shared_memory.SharedMemory(name=name)
    try:
        view = np.ndarray(shape, np.dtype(dtype), buffer=block.buf)
        samples = view.copy()
        del view
    finally:
        block.close()
    return samples


def _ignore(kind: str, payload) -> None:
    pass


# In the helper process.
_helper_cancel = None
_helper_reports = None
_recordings: OrderedDict[int, DecodedAudio] = OrderedDict()


def _set_up_helper(cancel_event, reports) -> None:
    global _helper_cancel, _helper_reports
    _helper_cancel, _helper_reports = cancel_event, reports


def _answer() -> bool:
    return True


def _load_in_helper(model_folder: Path) -> None:
    loaded_model(model_folder)


def _job_in_helper(job: int, held: tuple | None, sent: SentSamples | None, work: Callable,
                   args: tuple) -> tuple[bool, object]:
    """(True, `work(audio, cancel, report, *args)`), `audio` the recording `held` names (token, rate, warnings) or
    None; (False, None) when its samples are not held here and were not sent. Reports go to the parent tagged
    with `job`, the last one saying the job ended."""
    def report(kind: str, payload) -> None:
        _helper_reports.put((job, kind, payload))
    try:
        audio = None
        if held is not None:
            audio = _held_audio(*held, sent)
            if audio is None:
                return False, None
        return True, work(audio, CancelToken(_helper_cancel), report, *args)
    finally:
        report(_JOB_ENDED, None)


def _held_audio(token: int, sample_rate: int, warnings: list, sent: SentSamples | None) -> DecodedAudio | None:
    audio = _recordings.get(token)
    if audio is None:
        if sent is None:
            return None
        audio = _recordings[token] = DecodedAudio(_received(sent), sample_rate, warnings)
        while len(_recordings) > RECORDINGS_HELD:
            _recordings.popitem(last=False)
    _recordings.move_to_end(token)
    return audio


# The jobs: work(audio, cancel, report, *args), run in the helper or, where none starts, in the calling thread.
def _analysis(audio: DecodedAudio, cancel: CancelToken | None, report: Report, path: Path, model_folder: Path,
              spans: Spans) -> RecordingAnalysis:
    return analyse_samples(path, audio, loaded_model(model_folder), cancel=cancel, spans=spans)


def _segmentation(audio: DecodedAudio, cancel: CancelToken | None, report: Report, path: Path,
                  period: float | None) -> Segmentation:
    return segment_recording(path, audio.samples, audio.sample_rate, period)


def _folder_analysis(audio: None, cancel: CancelToken | None, report: Report, folder: Path, glob: str | None,
                     model_folder: Path, workspace: Path) -> Batch:
    return analyse_folder([folder], loaded_model(model_folder), ResultsCache.for_workspace(workspace), glob=glob,
                          cancel=cancel, on_progress=lambda progress: report("progress", progress),
                          on_result=lambda outcome: report("result", outcome))
