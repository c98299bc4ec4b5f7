"""Work done one item at a time (generating a synthetic dataset, preparing recordings), shared with helper
processes only when the work pays for them.

`run_jobs` starts the work in the caller's process and times it; helper processes join once the work left
would take longer than starting them costs (a fresh interpreter importing numpy, torch and the rest: seconds),
so ten recordings never wait for a pool and nine hundred are shared between the caller and its helpers. The
helpers spawn fresh interpreters, which is safe beside Qt and torch threads (a script that uses them needs the
usual `if __name__ == "__main__":` guard), and each computes on one thread: the processes are the
parallelism, and more threads per process would oversubscribe the cores. Ctrl-C reaches every process
of the terminal's group: the helpers start with SIGINT blocked, so that only the caller answers it (cancelling
the work) instead of each helper printing a traceback.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import os
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
WORKER_START_S = 5.0  # starting one helper, until this process has timed one (a loaded 2-core machine: 3-8 s)
PAYS_AFTER_STARTS = 2.0  # helpers start when the work left alone would take this many helper starts
_measured_start_s: float | None = None  # how long this process's last helper took to start


def default_workers() -> int:
    """Processes that work at once, the caller's included: the cores this process may use, at most 4."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, 4))


def _helper_start(set_up: Callable[..., None] | None = None, set_up_args: tuple = ()) -> None:
    _one_thread()
    _leave_with_parent()
    if set_up is not None:
        set_up(*set_up_args)


def _one_thread() -> None:
    for variable in _THREAD_VARIABLES:  # read when torch is first imported in the worker
        os.environ[variable] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    numpy_blas_on_one_thread()


def numpy_blas_on_one_thread() -> None:
    """numpy's BLAS (OpenBLAS, numpy's and scipy's own copies) computes on the calling thread alone, in this process
    and in the processes it starts: the copies loaded already through threadpoolctl, those loaded later through
    OPENBLAS_NUM_THREADS. LungKD's matrix products are small (a resampler's taps, a batch's band means), and
    after each one OpenBLAS's worker threads spin for a while: through `lungkd predict` of an hour its one worker
    took three quarters of a core on a two-core machine, away from torch's threads and the fbank's, and the
    hour's batches took 13-14 s instead of 10 s (python -m bench.predict_cost). The processes are the
    parallelism here, and torch's threads where they pay (FasterThreads)."""
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    if "numpy" in sys.modules or "scipy" in sys.modules:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1, user_api="blas")


def _leave_with_parent() -> None:
    """A helper whose caller is killed (no chance to shut its pool down) exits too, instead of waiting for work
    forever: its work queue, of which it holds both ends, never tells it. The parent's sentinel does, on every
    platform."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def exit_when_gone() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=exit_when_gone, name="leave with parent", daemon=True).start()


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Ctrl-C during the block is answered once it is over. For what must not be cut: a worker's start (cut
    between its launch and the start-up data sent to it, the worker would print a traceback; it inherits the
    blocked mask through fork and exec, and so stays deaf to Ctrl-C), and a C library calling back into Python
    (a KeyboardInterrupt raised in the callback is swallowed there). Any thread may use it; only the main
    thread holds the handler."""
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
        # a spawn starts multiprocessing's resource tracker first, if it is not running, and that start unblocks
        # Ctrl-C on its way out: started beforehand, the helper inherits the mask held here (POSIX only)
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
        with interrupts_held():
            super().start()


class _DeafToInterruptContext(multiprocessing.context.SpawnContext):
    Process = _DeafToInterruptProcess


class _DeafToInterruptPool(ProcessPoolExecutor):
    def submit(self, *args, **kwargs) -> Future:
        # the pool starts its workers inside submit: Ctrl-C is answered once submit has returned and the pool has
        # listed them, so that its shutdown waits for them. Answered between a worker's start and that listing
        # (where the worker's own hold used to end), this process left without it, and the worker, still reading
        # its start-up data, printed a traceback: its queues' semaphores were gone
        with interrupts_held():
            return super().submit(*args, **kwargs)


def spawn_pool(workers: int, set_up: Callable[..., None] | None = None, *set_up_args) -> ProcessPoolExecutor:
    """A pool of `workers` fresh interpreters computing on one thread each, deaf to Ctrl-C (run_jobs, which
    starts it, drops the work not yet begun when it is left by an exception). Each helper calls
    `set_up(*set_up_args)` (a module-level function) once it has started."""
    return _DeafToInterruptPool(workers, mp_context=_DeafToInterruptContext(), initializer=_helper_start,
                                initargs=(set_up, set_up_args))


def spawn_helper(target: Callable[..., None], *args) -> multiprocessing.Process:
    """A fresh interpreter running `target(*args)` (a module-level function), started: on one thread, deaf to
    Ctrl-C and gone with this process, as the pools' helpers are."""
    # the pools' start-up, whose last step (their set-up) is here the whole of the helper's work
    process = _DeafToInterruptContext().Process(target=_helper_start, args=(target, args), daemon=True)
    process.start()
    return process


def hand_back_freed_memory() -> None:
    """Returns the memory the heap has freed to the system, where the C library can (glibc's malloc_trim): a
    helper waiting for its next job otherwise keeps what its last job's peak took."""
    if not sys.platform.startswith("linux"):
        return
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # a C library without it (musl)
        return
    trim(0)


def spawn_context() -> multiprocessing.context.SpawnContext:
    """The context `spawn_pool`'s helpers start in: the Events and Queues it makes can be handed to them through
    `set_up_args`, and so shared with the parent."""
    return _DeafToInterruptContext()


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch computes on `count` intra-op threads while the block runs (also a decorator); as before after it."""
    torch = sys.modules.get("torch")  # not imported yet: the job imports it, and runs its first time as it is
    before = torch.get_num_threads() if torch is not None else None
    if before is not None and before != count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if before is not None and before != count:
            torch.set_num_threads(before)


def one_thread_here():
    """torch computes on one thread in this thread while the block runs, as it does in the helpers: its intra-op
    threads slow the many small operations of preparation and analysis down (on a busy two-core machine,
    resampling with two threads took 5-7 times as long as with one), and the helpers are the parallelism. Also a
    decorator."""
    return torch_threads(1)


class FasterThreads:
    """Chooses torch's intra-op threads for work done again and again (a model on batch after batch) by timing
    it: one thread and `most` are tried in turn, then the faster per item is kept, and the other tried again
    every `recheck` runs, as the machine's other work comes and goes. A free core makes a batched model 1.6x
    faster on two threads; on a two-core machine busy with other work two threads made it 1.3x slower.

    The first run after a change of count is not timed: it pays for the change (threads woken, kernels made for
    the new count; 13 % slower here for the fbank and the demo model), and timed, that cost swapped the choice
    for `recheck` runs at a time (python -m bench.predict_cost). Each count is therefore tried twice in a row,
    and timed the second time; every 32 runs by default, so that the slower count costs about 3 % of the work."""

    def __init__(self, most: int, recheck: int = 32):
        self.options = sorted({1, max(1, most)})
        self.recheck = recheck
        self.per_item: dict[int, float] = {}  # seconds per item of each count's last timed run
        self.runs = 0
        self._last: int | None = None  # the count of the last run

    def choice(self) -> int:
        untried = [n for n in self.options if n not in self.per_item]
        if untried:
            return untried[0]
        best = min(self.options, key=self.per_item.__getitem__)
        others = [n for n in self.options if n != best]
        return others[0] if others and self.runs % self.recheck in (0, 1) else best

    @contextmanager
    def timed(self, items: int) -> Iterator[None]:
        """The block on the chosen threads, timed for the next choice unless the count has just changed."""
        threads = self.choice()
        started = time.perf_counter()
        with torch_threads(threads):
            yield
        if threads == self._last:
            self.per_item[threads] = (time.perf_counter() - started) / max(items, 1)
        self._last = threads
        self.runs += 1


def helpers_pay(seconds_per_job: float, jobs_left: int, start_s: float) -> bool:
    """Whether helper processes are worth starting: the work left, done here alone, would outlast starting them
    PAYS_AFTER_STARTS times over (they start beside the work, which goes on meanwhile)."""
    return seconds_per_job * jobs_left > PAYS_AFTER_STARTS * start_s


def worker_start_seconds() -> float:
    """What starting a helper is expected to cost: as timed the last time, else WORKER_START_S."""
    return _measured_start_s if _measured_start_s is not None else WORKER_START_S


def run_jobs(work: Callable[[Job], Result], jobs: Sequence[Job], *, workers: int | None = None,
             check: Callable[[], None] | None = None, start_s: float | None = None) -> Iterator[Result]:
    """`work(job)` for every job, yielding each result as it is ready (not in the jobs' order).

    The jobs start here, one at a time and on one thread (`one_thread_here`); once `helpers_pay` (from the time
    they take and `start_s`, the cost of starting a helper: `worker_start_seconds()` unless given), up to
    `workers - 1` helper processes (`workers`: default_workers()) take jobs beside this process. `work` must be a module-level function when
    helpers may run it. `check` runs before every job here and while waiting for helpers; what it raises (a
    cancel) stops the work, helpers included."""
    global _measured_start_s
    helpers = max(0, min((workers or default_workers()) - 1, len(jobs) - 1))
    start_s = worker_start_seconds() if start_s is None else start_s
    waiting = deque(jobs)
    in_flight: set[Future] = set()
    pool: ProcessPoolExecutor | None = None
    pool_started = first_result = None
    spent, done_here = 0.0, 0
    try:
        while waiting or in_flight:
            if check:
                check()
            for future in [f for f in in_flight if f.done()]:
                in_flight.remove(future)
                if first_result is None:
                    first_result = time.perf_counter()
                    _measured_start_s = max(0.0, first_result - pool_started - spent / max(done_here, 1))
                yield future.result()
            while pool is not None and waiting and len(in_flight) < 2 * helpers:
                in_flight.add(pool.submit(work, waiting.popleft()))
            if waiting:
                began = time.perf_counter()
                with one_thread_here():
                    result = work(waiting.popleft())
                spent, done_here = spent + time.perf_counter() - began, done_here + 1
                if pool is None and helpers and helpers_pay(spent / done_here, len(waiting), start_s):
                    pool, pool_started = spawn_pool(helpers), time.perf_counter()
                yield result
            elif in_flight:
                wait(in_flight, timeout=0.2, return_when=FIRST_COMPLETED)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
