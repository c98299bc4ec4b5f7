"""Executors run independent training jobs (teachers, student seeds) and relay their events.

Three, chosen per run (`lungkd run --executor`, the recipe's `executor`, the wizard's Run page):

- `inprocess`: one job after another in the calling process (tests, scripts);
- `process`: each job in a child process of its own, a fresh interpreter (`python -m lungkd.core.kd.worker`, or
  in the desktop bundle its launcher started as a worker: core.kd.launch), `workers` at a time (the default
  for the command line and the window);
- `ray`: each job a Ray task, spread over every GPU of a Ray cluster (core.kd.ray_executor; `lungkd[cluster]`).

Jobs are plain data (core.kd.jobs: a Job trains one model, a TogetherJob several teachers as one batched
model), sent as JSON. Whatever the executor: events reach `emit` in the calling thread, the finished runs come
back in job order (a TogetherJob's members in turn), a job that fails raises its error here (the worker's class and
message for a LungKDError, else a WorkerError with the worker's traceback and exit code) after the other running
jobs were stopped, and a cancel (or Ctrl-C) stops every running job within a training step and raises Cancelled
(KeyboardInterrupt); a second Ctrl-C stops them at once. A worker that dies without reporting (SIGKILL, out of
memory) is started again, and its run resumes from its last epoch checkpoint. Nothing finished is lost: runs
checkpoint every epoch, atomically.
"""
from __future__ import annotations

import json
import os
import queue
import subprocess
import tempfile
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import IO, Protocol, Sequence

from lungkd.core.cancel import Cancelled, CancelToken, Interrupts, counting_interrupts
from lungkd.core.errors import LungKDError
from lungkd.core.events import Event
from lungkd.core.kd.jobs import EventSink, FinishedRun, Job, RunContext, execute, job_to_json
from lungkd.core.kd.launch import worker_command
from lungkd.core.kd.worker import CANCEL_MESSAGE, runs_from_outcome, died_error, is_cancel, parse_message
from lungkd.core.recipes import EXECUTORS


class Executor(Protocol):
    def run(self, jobs: Sequence[Job], emit: EventSink, cancel: CancelToken) -> list[FinishedRun]: ...

    def close(self) -> None:
        """Release what the executor holds (a Ray cluster it started)."""


class InProcessExecutor:
    """One job after another in this process, sharing prepared inputs between them."""

    def __init__(self) -> None:
        self.context = RunContext()

    def run(self, jobs: Sequence[Job], emit: EventSink, cancel: CancelToken) -> list[FinishedRun]:
        return [run for job in jobs for run in execute(job, emit, cancel, self.context)]

    def close(self) -> None:
        pass


def create_executor(name: str, *, workers: int | None = None, address: str | None = None) -> Executor:
    """The executor called `name`. `workers`: runs at once (None: one per GPU, or one); `address`: the Ray
    cluster to join ("auto": the one running on this machine's network; None: start a local one)."""
    if name not in EXECUTORS:
        raise LungKDError(f"unknown executor {name!r}.", fix=f"use one of: {', '.join(EXECUTORS)}.")
    if address and name != "ray":
        raise LungKDError(f"a cluster address ({address}) is only for the ray executor, not {name}.",
                          fix="add --executor ray, or leave out --address.")
    if name == "inprocess":
        return InProcessExecutor()
    if name == "process":
        return ProcessExecutor(workers)
    from lungkd.core.kd.ray_executor import RayExecutor

    return RayExecutor(address=address, workers=workers)


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as CUDA_VISIBLE_DEVICES names them."""
    import torch

    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = [d.strip() for d in listed.split(",") if d.strip()] if listed else []
    return names[:torch.cuda.device_count()] or [str(i) for i in range(torch.cuda.device_count())]


# ---------------------------------------------------------------- the process executor


@dataclass
class _Child:
    index: int  # of its job
    job: Job
    process: subprocess.Popen
    log: IO[bytes]  # its standard error, read back when it crashes
    slot: int
    outcome: dict | None = None

    @property
    def where(self) -> str:
        return f"process {self.process.pid}"


class ProcessExecutor:
    """Each job in a child process of its own, `workers` at a time. The children start in a session of their
    own, so Ctrl-C reaches only this process, which passes it on as a cancel; a child whose parent died
    cancels itself at its next step. On a machine with several GPUs each child sees one (CUDA_VISIBLE_DEVICES),
    in turn. A child that dies without reporting is started again up to `restarts` times."""

    def __init__(self, workers: int | None = None, restarts: int = 2, stop_timeout_s: float = 600.0):
        self.gpus = visible_gpus()
        self.workers = workers or max(1, len(self.gpus))
        self.restarts = restarts
        self.stop_timeout_s = stop_timeout_s  # after a cancel, a child still running this long is killed

    def run(self, jobs: Sequence[Job], emit: EventSink, cancel: CancelToken) -> list[FinishedRun]:
        return _Supervision(self, list(jobs), emit, cancel).run()

    def close(self) -> None:
        pass

    def threads(self, job: Job) -> int:
        """Torch threads per child. A deterministic run keeps this process's count, since CPU results depend on
        it: the same run gives the same bits whichever executor trains it."""
        import torch

        threads = torch.get_num_threads()
        return threads if job.settings.deterministic else max(1, threads // self.workers)

    def device_env(self, job: Job, slot: int) -> dict[str, str]:
        if len(self.gpus) > 1 and job.settings.device in ("auto", "cuda"):
            return {"CUDA_VISIBLE_DEVICES": self.gpus[slot % len(self.gpus)]}
        return {}


class _Supervision:
    """One `ProcessExecutor.run`: starts the children, relays their lines, restarts the dead, stops them all."""

    def __init__(self, executor: ProcessExecutor, jobs: list[Job], emit: EventSink, cancel: CancelToken):
        self.executor, self.jobs, self.emit, self.cancel = executor, jobs, emit, cancel
        self.pending = deque(range(len(jobs)))
        self.running: dict[int, _Child] = {}
        self.lines: queue.Queue[tuple[_Child, str | None]] = queue.Queue()
        self.deaths: Counter[int] = Counter()
        self.finished: list[list[FinishedRun] | None] = [None] * len(jobs)
        self.failure: LungKDError | None = None
        self.stopping_since: float | None = None
        self.interrupts = Interrupts()

    def run(self) -> list[FinishedRun]:
        with counting_interrupts() as self.interrupts:
            try:
                while self.pending or self.running:
                    self._step()
            finally:
                self._kill_all()  # only after an unexpected error
        if self.interrupts.came:
            raise KeyboardInterrupt
        if self.failure is not None:
            raise self.failure
        if self.cancel.is_set():
            raise Cancelled("training cancelled; every run keeps its last finished epoch and resumes from it.")
        return [run for runs in self.finished for run in runs]

    def _step(self) -> None:
        if self.interrupts.came:  # Ctrl-C: stop the children as a cancel would; a second time, at once
            self.cancel.cancel()
        if self.cancel.is_set() or self.failure is not None:
            self._stop()
        if self.interrupts.count > 1:
            self._kill_all()
        while self.pending and len(self.running) < self.executor.workers and self.stopping_since is None:
            self._start(self.pending.popleft())
        try:
            child, line = self.lines.get(timeout=0.2)
        except queue.Empty:
            overdue = self.stopping_since is not None and \
                time.monotonic() - self.stopping_since > self.executor.stop_timeout_s
            if overdue:
                self._kill_all()
            return
        if line is not None:
            event, outcome = parse_message(line)
            if event is not None:
                self.emit(event)
            else:
                child.outcome = outcome
        else:
            self._ended(child, child.process.wait())

    def _start(self, index: int) -> None:
        job = self.jobs[index]
        slot = min(set(range(self.executor.workers)) - {c.slot for c in self.running.values()})
        log = tempfile.TemporaryFile()
        process = subprocess.Popen(
            worker_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
            text=True, encoding="utf-8", env={**os.environ, **self.executor.device_env(job, slot)},
            start_new_session=True)
        child = _Child(index, job, process, log, slot)
        self.running[index] = child
        process.stdin.write(json.dumps({"job": job_to_json(job), "threads": self.executor.threads(job)}) + "\n")
        process.stdin.flush()
        threading.Thread(target=self._read, args=(child,), daemon=True).start()
        self.emit(Event(job.stage, "notice", f"training in worker {child.where}", run=job.name,
                        data={"executor": "process", "pid": process.pid, "attempt": self.deaths[index] + 1}))

    def _read(self, child: _Child) -> None:
        for line in child.process.stdout:
            if line.endswith("\n"):  # a line cut short by a killed child is dropped
                self.lines.put((child, line))
        self.lines.put((child, None))

    def _ended(self, child: _Child, exit_code: int) -> None:
        del self.running[child.index]
        for pipe in (child.process.stdin, child.process.stdout):
            try:
                pipe.close()
            except OSError:
                pass  # a pipe to a dead child may fail to flush
        job, outcome = child.job, child.outcome
        if outcome is not None:
            child.log.close()
            if not is_cancel(outcome):
                try:
                    self.finished[child.index] = runs_from_outcome(outcome, job.name, child.where, exit_code)
                except LungKDError as exc:
                    self.failure = self.failure or exc
        elif self.stopping_since is not None:
            child.log.close()  # stopped on purpose; its run keeps its last finished epoch
        elif self.deaths[child.index] < self.executor.restarts:
            child.log.close()
            self.deaths[child.index] += 1
            self.emit(Event(job.stage, "notice", f"its worker ({child.where}) died (exit code {exit_code}); starting "
                            "it again, to resume from its last finished epoch", run=job.name,
                            data={"executor": "process", "exit_code": exit_code}))
            self.pending.appendleft(child.index)
        else:
            child.log.seek(0)
            tail = child.log.read()[-8000:].decode("utf-8", "replace")
            child.log.close()
            error = died_error(job.name, child.where, exit_code, self.deaths[child.index] + 1, tail)
            self.emit(Event(job.stage, "failed", error.problem.message, run=job.name,
                            data={**job.describe(), "exit_code": exit_code}))
            self.failure = self.failure or error

    def _stop(self) -> None:
        """Ask every running child to stop after its current step; start no more."""
        if self.stopping_since is not None:
            return
        self.stopping_since = time.monotonic()
        self.pending.clear()
        for child in self.running.values():
            try:
                child.process.stdin.write(CANCEL_MESSAGE + "\n")
                child.process.stdin.flush()
            except OSError:
                pass  # it has just ended

    def _kill_all(self) -> None:
        for child in list(self.running.values()):
            if child.process.poll() is None:
                child.process.kill()
