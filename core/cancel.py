"""Cooperative cancellation shared by every long operation of the engine."""
from __future__ import annotations

import threading

from lungkd.core.errors import LungKDError


class Cancelled(LungKDError):
    """The user cancelled; what was finished is kept and the same call resumes from it."""


class CancelToken:
    """Set from any thread (the GUI, a signal handler); long work checks `is_set()` between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()
