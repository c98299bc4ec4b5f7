"""A training job away from the driver: how a worker (a child process or a Ray task) runs one, and how what
came of it travels back as plain data.

A worker turns the result of a job into an outcome, `{"runs": [...]}` (one FinishedRun per model the job trained)
or `{"error": ...}`, and the driver turns the outcome back into the runs, or into the exception the worker raised: a LungKDError keeps its class,
message, file, line and fix (bad input is reported the same wherever it was found); anything else becomes a
WorkerError carrying the worker's traceback and exit code. No exception object is pickled.

`python -m lungkd.core.kd.worker` (in the desktop bundle: the launcher with core.kd.launch's flag, which calls
`serve`) is the child process of the process executor. It reads one line from
standard input — `{"job": job JSON (core.kd.jobs.job_to_json), "threads": N}` — and then listens there for `cancel` (end of input,
a parent that died, counts as cancel too). It writes JSON lines to its standard output: `{"event": ...}` for
each event, then `{"outcome": ...}`, and exits 0, or 1 after an error outcome; with no job (end of input
first) it exits 0 at once. Anything else printed to its
standard output is moved to standard error, so a library's print cannot break the stream.
"""
from __future__ import annotations

import ctypes
import importlib
import json
import os
import sys
import threading
import traceback
from dataclasses import asdict

from lungkd.core.cancel import Cancelled, CancelToken
from lungkd.core.errors import LungKDError
from lungkd.core.events import Event
from lungkd.core.kd.jobs import EventSink, FinishedRun, Job, RunContext, execute, job_from_json
from lungkd.core.storage import storage_error

CANCEL_MESSAGE = "cancel"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
KEPT_FREED_MEMORY = 1 << 30  # blocks below this size stay in the process when freed


class WorkerError(LungKDError):
    """A training run whose worker crashed: an unexpected exception, or a process that died."""

    def __init__(self, message: str, *, worker_traceback: str = "", exit_code: int | None = None, fix: str = ""):
        super().__init__(message, fix=fix)
        self.worker_traceback = worker_traceback
        self.exit_code = exit_code

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}\nThe worker's traceback:\n{self.worker_traceback.rstrip()}" if self.worker_traceback else text


class RemoteTraceback(Exception):
    """The worker's traceback, chained under the error the driver raises (as concurrent.futures does), so a
    traceback printed in the driver shows where in the worker it happened."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text.rstrip()}\n"""'


_CRASH_FIX = ("this is a fault in LungKD or a library it uses, not in the recipe: report it with the traceback "
              "(also in the experiment's events.jsonl); the same command resumes from the last finished epoch.")


def describe_error(exc: BaseException) -> dict:
    """An exception as plain data."""
    problem = exc.problem.to_dict() if isinstance(exc, LungKDError) else None
    return {"type": type(exc).__name__, "module": type(exc).__module__, "problem": problem, "message": str(exc),
            "traceback": "".join(traceback.format_exception(exc))}


def run_outcome(job: Job, emit: EventSink, cancel: CancelToken, context: RunContext | None = None) -> dict:
    """The job's finished runs, or the error it raised, as an outcome. Ctrl-C in a worker is a cancel."""
    try:
        return {"runs": [run.model_dump(mode="json") for run in execute(job, emit, cancel, context)]}
    except KeyboardInterrupt:
        return {"error": describe_error(Cancelled("training cancelled; the last finished epoch is kept."))}
    except Exception as exc:  # every failure travels back to the driver, which raises it
        return {"error": describe_error(storage_error(exc) or exc)}  # a full disk is no fault of LungKD's


def _lungkd_class(error: dict) -> type[LungKDError] | None:
    if error["problem"] is None or not error["module"].startswith("lungkd."):
        return None
    cls = getattr(importlib.import_module(error["module"]), error["type"], None)
    return cls if isinstance(cls, type) and issubclass(cls, LungKDError) else None


def is_cancel(outcome: dict) -> bool:
    """Whether the run stopped because it was asked to (not a failure)."""
    cls = _lungkd_class(outcome["error"]) if "error" in outcome else None
    return cls is not None and issubclass(cls, Cancelled)


def runs_from_outcome(outcome: dict, run: str, where: str, exit_code: int | None = None) -> list[FinishedRun]:
    """The finished runs of a job, or the worker's exception raised here."""
    if "runs" in outcome:
        return [FinishedRun.model_validate(found) for found in outcome["runs"]]
    error = outcome["error"]
    remote = RemoteTraceback(error["traceback"])
    cls = _lungkd_class(error)
    if cls is not None:
        p = error["problem"]
        exc = cls.__new__(cls)  # the worker's class and problem, whatever its constructor's signature
        LungKDError.__init__(exc, p["message"], path=p["path"], line=p["line"], fix=p["fix"])
        raise exc from remote
    code = "" if exit_code is None else f", exit code {exit_code}"
    raise WorkerError(f"{run} crashed in its worker ({where}{code}): {error['type']}: {error['message']}",
                      worker_traceback=error["traceback"], exit_code=exit_code, fix=_CRASH_FIX) from remote


def died_error(run: str, where: str, exit_code: int | None, attempts: int, log_tail: str = "") -> WorkerError:
    """A worker that died without reporting, as many times as it was allowed to."""
    return WorkerError(f"the worker training {run} ({where}) died without reporting {attempts} time(s); the last "
                       f"exit code was {exit_code}" + (" (killed by a signal)" if (exit_code or 0) < 0 else "") + ".",
                       worker_traceback=log_tail, exit_code=exit_code,
                       fix="look for the system killing it (out of memory: dmesg, the cluster's logs); "
                           + _CRASH_FIX)


# ---------------------------------------------------------------- the worker's process


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse instead of returning it to the system; False where
    there is no glibc (macOS, Windows, musl), which changes nothing.

    By default glibc hands every block above a few MB straight back to the system when freed, so the
    activations of each evaluation batch and every prepared-inputs array are fresh pages that fault in again,
    and on a VM a page fault is dear: predicting 385 cycles with a tiny CNN6 took 0.92 s, 0.38 s with this
    (bench/worker_overheads.py). A training worker lives for one run, so the memory it keeps is its own peak.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, KEPT_FREED_MEMORY)) and bool(mallopt(_M_TRIM_THRESHOLD, KEPT_FREED_MEMORY))


def set_up_worker(threads: int) -> None:
    """A training worker's process, before its run: torch's thread count, and freed memory kept."""
    import torch

    torch.set_num_threads(threads)
    keep_freed_memory()


# ---------------------------------------------------------------- the child process of the process executor


def _listen_for_cancel(stream, cancel: CancelToken) -> None:
    for line in stream:
        if line.strip() == CANCEL_MESSAGE:
            break
    cancel.cancel()  # asked to, or the parent is gone (end of input)


def serve() -> int:
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints go to standard error, not into the stream
    line = sys.stdin.readline()
    if not line.strip():  # the parent went away before it sent a job (or only timed this start): nothing to do
        return 0
    request = json.loads(line)
    cancel = CancelToken()
    threading.Thread(target=_listen_for_cancel, args=(sys.stdin, cancel), daemon=True).start()
    set_up_worker(request["threads"])
    lock = threading.Lock()

    def send(message: dict) -> None:
        try:
            with lock:
                protocol.write(json.dumps(message, default=str) + "\n")
        except OSError:  # the parent is gone: stop at the next step
            cancel.cancel()

    outcome = run_outcome(job_from_json(request["job"]), lambda e: send({"event": asdict(e)}), cancel)
    send({"outcome": outcome})
    return 1 if "error" in outcome and not is_cancel(outcome) else 0


def parse_message(line: str) -> tuple[Event | None, dict | None]:
    """One line of a worker's stream: an event, or the outcome."""
    message = json.loads(line)
    if "event" in message:
        return Event(**message["event"]), None
    return None, message["outcome"]


if __name__ == "__main__":
    sys.exit(serve())
