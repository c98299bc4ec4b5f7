"""Process pools for work done one recording at a time (generating a synthetic dataset, preparing inputs).

The pools spawn fresh interpreters, which is safe beside Qt and torch threads (a script that uses one needs
the usual `if __name__ == "__main__":` guard), and each worker computes on one thread: the pool is the
parallelism, and more threads per worker would oversubscribe the cores. Ctrl-C reaches every process of the
terminal's group: the workers start with SIGINT blocked, so that only the caller answers it (cancelling the pool)
instead of each worker printing a traceback.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
import signal
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Iterator

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def default_workers() -> int:
    """Processes for a pool: the cores this process may use, at most 4."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, 4))


def _one_thread() -> None:
    for variable in _THREAD_VARIABLES:  # read when numpy's BLAS or torch is first imported in the worker
        os.environ[variable] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """Ctrl-C while a worker starts is answered once it has started: cut between its launch and the start-up data
    sent to it, the worker would print a traceback. The worker inherits the blocked mask through fork and exec,
    and so stays deaf to Ctrl-C (any thread may start a worker; only the main thread holds the handler)."""
    held: list[int] = []
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_handler = signal.signal(signal.SIGINT, lambda number, _: held.append(number)) if in_main_thread else None
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        if in_main_thread:
            signal.signal(signal.SIGINT, previous_handler)
            if held:
                signal.raise_signal(signal.SIGINT)


class _DeafToInterruptProcess(multiprocessing.context.SpawnProcess):
    def start(self) -> None:
        if not hasattr(signal, "pthread_sigmask"):  # Windows delivers Ctrl-C otherwise
            super().start()
            return
        with _interrupts_held():
            super().start()


class _DeafToInterruptContext(multiprocessing.context.SpawnContext):
    Process = _DeafToInterruptProcess


class _Pool(ProcessPoolExecutor):
    def __exit__(self, kind, value, traceback) -> bool:
        # left by an exception (Ctrl-C, a cancel, a failed job): the work not yet begun is dropped, not waited for
        self.shutdown(wait=True, cancel_futures=kind is not None)
        return False


def spawn_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of `workers` fresh interpreters computing on one thread each, deaf to Ctrl-C; leaving its `with`
    by an exception drops the work not yet begun."""
    return _Pool(workers, mp_context=_DeafToInterruptContext(), initializer=_one_thread)
