"""Cooperative cancellation shared by every long operation of the engine, and Ctrl-C turned into it."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

from lungkd.core.errors import LungKDError


class Cancelled(LungKDError):
    """The user cancelled; what was finished is kept and the same call resumes from it."""


class CancelToken:
    """Set from any thread (the GUI, a signal handler); long work checks `is_set()` between steps. `event` is
    the flag to use, when it is shared: a multiprocessing Event lets work in a helper process hear a cancel set
    in its parent."""

    def __init__(self, event=None) -> None:
        self._event = event if event is not None else threading.Event()

    def cancel(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


class Interrupts:
    """How many times Ctrl-C came while `counting_interrupts` held it."""

    def __init__(self) -> None:
        self.count = 0

    @property
    def came(self) -> bool:
        return self.count > 0


@contextmanager
def counting_interrupts() -> Iterator[Interrupts]:
    """Within the block Ctrl-C (SIGINT) is counted instead of raising KeyboardInterrupt wherever the main thread
    happens to be, so a loop that supervises workers is never cut between taking a message and acting on it
    (which lost a worker's end and waited for it for ever). The loop looks at the count between its steps —
    the first Ctrl-C a cancel, a second one "stop at once" — and raises KeyboardInterrupt after the block.
    The handler only counts: it runs between any two bytecodes of the main thread, where taking a lock could
    deadlock. Outside the main thread, or where SIGINT is not Python's default handler (ignored, or someone
    else's), nothing changes."""
    interrupts = Interrupts()
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield interrupts
        return

    def on_sigint(signum, frame) -> None:
        interrupts.count += 1

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield interrupts
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
