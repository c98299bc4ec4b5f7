"""The QThread engine adapter: a long core call runs off the GUI thread, its progress, result and errors
arrive as Qt signals, and Cancel sets the core's cancel token.

A job is `job(report, cancel)`: it calls `report(event)` for each progress item (a core `Event`, so any core
call taking `on_event` can be handed `report`), `report.deliver(result)` for each partial result (one
recording of many, say) and checks `cancel.is_set()` between steps; what it returns is its result.
Progress, partial results and the result travel on separate signals. The training wizard runs
experiments through the same classes.
"""
from __future__ import annotations

import traceback
from collections import deque
from typing import Any, Callable

from PySide6.QtCore import QEventLoop, QObject, Qt, QThread, QTimer, Signal

from lungkd.core.cancel import Cancelled, CancelToken

Job = Callable[[Callable[[Any], None], CancelToken], Any]


class Reporter:
    """What a job reports through: call it with progress events, `deliver` partial results."""

    def __init__(self, progress: Signal, partial: Signal):
        self._progress = progress
        self.deliver = partial.emit

    def __call__(self, event: Any) -> None:
        self._progress.emit(event)


class _Worker(QObject):
    progress = Signal(object)
    partial = Signal(object)
    finished = Signal(object)
    failed = Signal(str, str)  # message, details to copy
    cancelled = Signal()

    def __init__(self, job: Job, cancel: CancelToken):
        super().__init__()
        self.job = job
        self.cancel = cancel

    def run(self) -> None:
        try:
            result = self.job(Reporter(self.progress, self.partial), self.cancel)
        except Cancelled:
            self.cancelled.emit()
        except Exception as exc:  # the window must keep working whatever the engine raises
            self.failed.emit(str(exc) or type(exc).__name__, traceback.format_exc())
        else:
            self.finished.emit(result)


class EngineTask(QObject):
    """One job in its own QThread. Signals arrive on the GUI thread (queued), so slots may touch widgets;
    `done` follows whichever of finished / failed / cancelled came."""

    progress = Signal(object)
    partial = Signal(object)
    finished = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()
    done = Signal()

    def __init__(self, job: Job, title: str = "", parent: QObject | None = None):
        super().__init__(parent)
        self.title = title
        self.cancel_token = CancelToken()
        self._thread = QThread(self)
        self._worker = _Worker(job, self.cancel_token)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        for name in ("progress", "partial", "finished", "failed", "cancelled"):
            getattr(self._worker, name).connect(getattr(self, name))
        for name in ("finished", "failed", "cancelled"):
            # Direct (quit() is thread-safe): the thread ends with its job even while the GUI thread runs no event
            # loop, as in wait(); queued, wait() could time out and the task be destroyed with its thread running.
            getattr(self._worker, name).connect(self._thread.quit, Qt.ConnectionType.DirectConnection)
        self._thread.finished.connect(self._thread_finished)

    def _thread_finished(self) -> None:
        # QThread.finished is emitted from the thread just before it ends: wait for the end, so that whoever
        # deletes the task on `done` never destroys a QThread that is still running (Qt aborts the process).
        self._thread.wait()
        self.done.emit()

    def start(self) -> EngineTask:
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.cancel_token.cancel()

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def wait(self, ms: int = 30000) -> bool:
        return self._thread.wait(ms)


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
