"""The engine adapter: a long core call runs off the GUI thread in superqt's worker, its progress, partial
results, result and errors arrive as Qt signals on the GUI thread, and Cancel sets the core's cancel token.

A job is `job(report, cancel)`: it calls `report(event)` for each progress item (a core `Event`, so any core
call taking `on_event` can be handed `report`), `report.deliver(result)` for each partial result (one
recording of many, say) and checks `cancel.is_set()` between steps; what it returns is its result.
Progress, partial results and the result travel on separate signals. The training wizard runs
experiments through the same classes.
"""
from __future__ import annotations

import sys
import threading
import traceback
import warnings
from collections import deque
from typing import Any, Callable, ClassVar

from PySide6.QtCore import QEventLoop, QObject, Qt, QThreadPool, QTimer, Signal
from superqt.utils import FunctionWorker

from lungkd.core.cancel import Cancelled, CancelToken
from lungkd.core.storage import storage_error

Job = Callable[[Callable[[Any], None], CancelToken], Any]


class Reporter(QObject):
    """What a job reports through: call it with progress events, `deliver` partial results. Made on the GUI
    thread and emitted from the worker's, its signals are relayed to the task's own on the GUI thread (queued),
    so that a slot connected just after `start` misses nothing."""

    progress = Signal(object)
    partial = Signal(object)

    def __call__(self, event: Any) -> None:
        self.progress.emit(event)

    def deliver(self, result: Any) -> None:
        self.partial.emit(result)


_shown_warnings: set[tuple] = set()


def show_warning(shown: tuple) -> None:
    """A warning raised while a job ran. superqt's worker routes every warning of the process to its `warned`
    signal while it runs (warnings would otherwise vanish): written to stderr as Python does, once per place."""
    message, category, filename, lineno = shown[:4]
    if (str(message), category, filename, lineno) not in _shown_warnings:
        _shown_warnings.add((str(message), category, filename, lineno))
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno))


class EngineTask(QObject):
    """One job in a thread of Qt's pool. Signals arrive on the GUI thread (queued), so slots may touch widgets;
    `done` follows whichever of finished / failed / cancelled came."""

    progress = Signal(object)
    partial = Signal(object)
    finished = Signal(object)
    failed = Signal(str, str)  # message, details to copy
    cancelled = Signal()
    done = Signal()
    running: ClassVar[int] = 0  # tasks started and not done: the pool keeps a thread for each

    def __init__(self, job: Job, title: str = "", parent: QObject | None = None):
        super().__init__(parent)
        self.title = title
        self.cancel_token = CancelToken()
        self.error: Exception | None = None  # what the job raised, for a page that offers a way out by its kind
        self._idle = threading.Event()
        self._idle.set()
        self._reporter = Reporter()
        self._reporter.progress.connect(self.progress)
        self._reporter.partial.connect(self.partial)
        self._worker = FunctionWorker(job, self._reporter, self.cancel_token)
        self._worker.returned.connect(self.finished)
        self._worker.errored.connect(self._errored)
        self._worker.warned.connect(show_warning)
        # Direct: set in the worker's thread as the job ends, so that wait() needs no event loop
        self._worker.finished.connect(self._idle.set, Qt.ConnectionType.DirectConnection)
        self._worker.finished.connect(self._done)

    def _errored(self, exc: Exception) -> None:
        if isinstance(exc, Cancelled):
            self.cancelled.emit()
        else:  # the window must keep working whatever the engine raises; a full disk is said as one
            said = storage_error(exc) or exc
            self.error = exc
            self.failed.emit(str(said) or type(exc).__name__, "".join(traceback.format_exception(exc)))

    def _done(self) -> None:
        EngineTask.running -= 1
        self.done.emit()

    def start(self) -> EngineTask:
        """Starts the job at once, as a thread of its own would: the pool grows to one thread per running task,
        so a spectrogram never waits for a training run on a two-core machine."""
        EngineTask.running += 1
        pool = QThreadPool.globalInstance()
        pool.setMaxThreadCount(max(pool.maxThreadCount(), EngineTask.running))
        self._idle.clear()
        self._worker.start()
        return self

    def cancel(self) -> None:
        self.cancel_token.cancel()

    def is_running(self) -> bool:
        return not self._idle.is_set()

    def wait(self, ms: int = 30000) -> bool:
        return self._idle.wait(ms / 1000)


class TaskQueue(QObject):
    """Runs tasks one after another, so the engine's long calls never overlap (one model, one device).
    `progress` relays the running task's reports; `busy` says when the queue starts and empties."""

    progress = Signal(object)
    busy = Signal(bool)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._pending: deque[EngineTask] = deque()
        self.current: EngineTask | None = None

    def submit(self, task: EngineTask) -> EngineTask:
        task.setParent(self)
        task.progress.connect(self.progress)
        task.done.connect(self._next)
        self._pending.append(task)
        if self.current is None:
            self.busy.emit(True)
            self._next()
        return task

    def _next(self) -> None:
        if self.current is not None:
            self.current.deleteLater()
        self.current = self._pending.popleft().start() if self._pending else None
        if self.current is None:
            self.busy.emit(False)

    def cancel_all(self) -> None:
        """Cancels the running task; the waiting ones are dropped without starting (each says `cancelled`)."""
        dropped, self._pending = self._pending, deque()
        for task in dropped:
            task.cancelled.emit()
            task.deleteLater()
        if self.current is not None:
            self.current.cancel()

    def is_busy(self) -> bool:
        return self.current is not None

    def wait_idle(self, ms: int = 300000) -> bool:
        """Runs the event loop until the queue is empty (for closing, scripts and tests); False on timeout."""
        if self.is_busy():
            loop = QEventLoop()
            self.busy.connect(loop.quit)
            QTimer.singleShot(ms, loop.quit)
            loop.exec()
            self.busy.disconnect(loop.quit)
        return not self.is_busy()
