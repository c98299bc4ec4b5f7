"""Process pools for work done one recording at a time (generating a synthetic dataset, preparing inputs).

The pools spawn fresh interpreters, which is safe beside Qt and torch threads (a script that uses one needs
the usual `if __name__ == "__main__":` guard), and each worker computes on one thread: the pool is the
parallelism, and more threads per worker would oversubscribe the cores.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

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


def spawn_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of `workers` fresh interpreters computing on one thread each."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread)
