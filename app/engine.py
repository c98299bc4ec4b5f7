"""The QThread engine adapter: runs a long core call off the GUI thread and turns its progress,
result and errors into Qt signals. Cancel sets the core's cancel token."""
from __future__ import annotations

import time
import traceback
from typing import Any, Callable

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal

from lungkd.core.cancel import Cancelled, CancelToken


class _Worker(QObject):
    progress = Signal(object)  # whatever the core reports (an Event, a (done, total) pair, ...)
    finished = Signal(object)
    failed = Signal(str, str)  # message, details to copy
    cancelled = Signal()

    def __init__(self, job: Callable[[Callable[[Any], None], CancelToken], Any], cancel: CancelToken):
        super().__init__()
        self.job = job
        self.cancel = cancel

    def run(self) -> None:
        try:
            result = self.job(self.progress.emit, self.cancel)
        except Cancelled:
            self.cancelled.emit()
        except Exception as exc:  # the window must keep working whatever the engine raises
            self.failed.emit(str(exc), traceback.format_exc())
        else:
            self.finished.emit(result)


class EngineTask(QObject):
    """One background job: `job(report, cancel)` runs in its own QThread.

    Signals arrive on the GUI thread (queued connections), so slots may touch widgets.
    """

    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()
    done = Signal()  # after any of finished / failed / cancelled

    def __init__(self, job: Callable[[Callable[[Any], None], CancelToken], Any], parent: QObject | None = None):
        super().__init__(parent)
        self.cancel_token = CancelToken()
        self._thread = QThread()
        self._worker = _Worker(job, self.cancel_token)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        for name in ("progress", "finished", "failed", "cancelled"):
            getattr(self._worker, name).connect(getattr(self, name))
        for name in ("finished", "failed", "cancelled"):
            getattr(self._worker, name).connect(self._thread.quit)
        self._thread.finished.connect(self.done)

    def start(self) -> "EngineTask":
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.cancel_token.cancel()

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def wait(self, ms: int = 30000) -> bool:
        """Wait for the job while delivering its signals. (QThread.wait would hold the GIL the worker needs.)"""
        deadline = time.monotonic() + ms / 1000
        while self._thread.isRunning() and time.monotonic() < deadline:
            QCoreApplication.processEvents()
            time.sleep(0.01)
        QCoreApplication.processEvents()
        return not self._thread.isRunning()
