"""The Ray executor: each training run a Ray task, so k teachers spread over every GPU of a Ray cluster.

Ray is an optional extra (`pip install 'lungkd[cluster]'`). `address=None` starts a local Ray instance (and
stops it on close); "auto" joins the cluster this machine belongs to (`ray start --head` on one node,
`ray start --address HEAD:6379` on the others); "ray://HOST:10001" joins one from outside.

Each task asks for one CPU and the share of a GPU its architecture needs (the model registry's `gpu_share`;
none on a cluster without GPUs or with `device = "cpu"`), so several small models share a GPU and a BTS
teacher has one to itself; Ray sets CUDA_VISIBLE_DEVICES for it. A worker killed mid-run (SIGKILL, a lost
node) is retried by Ray (`max_retries`) and resumes from its run folder's last epoch checkpoint.

Workers write only their run folder and content-addressed cache entries (atomically); the driver alone writes
the catalog, from the events relayed to it. So the workspace must be on storage every node mounts at the same
path (NFS, a cluster file system): the driver leaves a marker file in it, and a task on a node that cannot see
the marker fails with WorkspaceNotShared, naming the node and the fix.

Events and cancel travel through one small actor, the relay: a task pushes its events every quarter second
and gets back whether the run was cancelled, so a cancel reaches every task within a step.
"""
from __future__ import annotations

import json
import os
import secrets
import threading
from collections import Counter
from pathlib import Path
from typing import Sequence

from lungkd.core.cancel import Cancelled, CancelToken, counting_interrupts
from lungkd.core.errors import LungKDError
from lungkd.core.events import Event
from lungkd.core.kd.jobs import EventSink, FinishedRun, Job, TogetherJob, job_from_json, job_to_json
from lungkd.core.kd.worker import (WorkerError, runs_from_outcome, describe_error, is_cancel, run_outcome,
                                   set_up_worker)
from lungkd.core.models.registry import model_info
from lungkd.core.storage import write_text_atomic

CPUS_PER_RUN = 1
FLUSH_INTERVAL_S = 0.25
_MARKER_PREFIX = ".lungkd-visible-"  # hidden: workspace scans skip names starting with "."


class WorkspaceNotShared(LungKDError):
    """A Ray node that cannot see the driver's workspace."""


def _ray():
    try:
        import ray
    except ImportError:
        raise LungKDError("the ray executor needs Ray, which is not installed.",
                          fix="pip install 'lungkd[cluster]' (or choose the process executor).") from None
    return ray


def gpu_request(job: Job, cluster_gpus: float) -> float:
    """The GPUs a run's task asks Ray for: its architecture's share where it will train on a GPU."""
    device = job.settings.device
    if device == "cpu" or (device == "auto" and not cluster_gpus):
        return 0.0
    if not cluster_gpus:
        raise LungKDError(f'device = "{device}" asks for a GPU, but the Ray cluster has none.',
                          fix='use device = "auto" (GPUs where the cluster has them) or "cpu".')
    if device.startswith("cuda:"):
        raise LungKDError(f'device = "{device}" names one GPU; on a Ray cluster Ray gives each run its GPU.',
                          fix='use device = "auto" or "cuda" with the ray executor.')
    share = model_info(job.spec.arch).gpu_request(job.spec.model.size)
    return min(1.0, share * len(job.members)) if isinstance(job, TogetherJob) else share


def require_shared_workspace(workspace: Path, marker: str, node: str) -> None:
    if not (workspace / marker).is_file():
        raise WorkspaceNotShared(
            f"the workspace is not visible from Ray node {node}: the driver wrote {marker} into it and this node "
            "cannot read it there.", path=workspace,
            fix="put the workspace on storage every node mounts at the same path (NFS, a cluster file system) and "
                "give that path with --workspace or LUNGKD_WORKSPACE.")


class EventRelay:
    """The actor between the tasks and the driver: events one way, the cancel flag the other."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.cancelled = False

    def push(self, batch: list[str]) -> bool:
        self.events.extend(batch)
        return self.cancelled

    def drain(self) -> list[str]:
        events, self.events = self.events, []
        return events

    def cancel(self) -> None:
        self.cancelled = True


class _Outbox:
    """A task's events, pushed to the relay every FLUSH_INTERVAL_S by a thread; the answer sets the cancel."""

    def __init__(self, relay, cancel: CancelToken):
        self.relay, self.cancel = relay, cancel
        self.events: list[str] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def put(self, event: Event) -> None:
        with self.lock:
            self.events.append(event.to_json())

    def flush(self) -> None:
        ray = _ray()
        with self.lock:
            batch, self.events = self.events, []
        try:
            if ray.get(self.relay.push.remote(batch)):
                self.cancel.cancel()
        except ray.exceptions.RayError:  # the driver is gone: stop at the next step
            self.cancel.cancel()

    def _loop(self) -> None:
        # Only this thread waits on the relay while the run trains: a task whose main thread blocks in ray.get
        # hands its CPU back to Ray, which then starts more tasks than the cluster has CPUs.
        while True:
            self.flush()
            if self.stopped.wait(FLUSH_INTERVAL_S):
                return

    def __enter__(self) -> "_Outbox":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join()
        self.flush()  # the last events (the run's end), before the task returns


def train_run(job_json: str, relay, marker: str, threads: int) -> dict:
    """The Ray task: one run, its events through the relay; returns its outcome (core.kd.worker)."""
    ray = _ray()
    job = job_from_json(job_json)
    node = ray.util.get_node_ip_address()
    gpus = ray.get_gpu_ids()
    where = f"Ray node {node}, process {os.getpid()}" + (f", GPU {', '.join(map(str, gpus))}" if gpus else "")
    cancel = CancelToken()
    with _Outbox(relay, cancel) as outbox:
        outbox.put(Event(job.stage, "notice", f"training on {where}", run=job.name,
                         data={"executor": "ray", "pid": os.getpid(), "node": node, "gpus": list(map(str, gpus))}))
        set_up_worker(threads)
        try:
            require_shared_workspace(Path(job.workspace), marker, node)
        except WorkspaceNotShared as exc:
            outcome = {"error": describe_error(exc)}
        else:
            outcome = run_outcome(job, outbox.put, cancel)
    return {**outcome, "where": where}


class RayExecutor:
    def __init__(self, address: str | None = None, workers: int | None = None, retries: int = 3):
        ray = _ray()
        self.retries = retries
        self.started_here = not ray.is_initialized()
        if self.started_here:
            try:
                if address:
                    ray.init(address=address, include_dashboard=False)
                else:
                    ray.init(num_cpus=workers, include_dashboard=False)
            except ConnectionError as exc:
                raise LungKDError(f"no Ray cluster to join at {address!r} ({exc}).",
                                  fix="start its head with `ray start --head` (and `ray start --address HEAD:6379` "
                                      "on the other nodes), or leave out --address to start a local one.") from None
        self._task = ray.remote(train_run)
        self._relay = ray.remote(num_cpus=0)(EventRelay)

    def close(self) -> None:
        if self.started_here:
            _ray().shutdown()

    def run(self, jobs: Sequence[Job], emit: EventSink, cancel: CancelToken) -> list[FinishedRun]:
        import torch

        ray = _ray()
        if not jobs:
            return []
        markers = {}
        for workspace in {job.workspace for job in jobs}:
            if not Path(workspace).is_absolute():
                raise LungKDError(f"the workspace path {workspace} is relative; other nodes would read another "
                                  "folder.", fix="give the workspace as an absolute path on shared storage.")
            markers[workspace] = _MARKER_PREFIX + secrets.token_hex(8)
            write_text_atomic(Path(workspace) / markers[workspace], "written by the LungKD driver for its workers")
        relay = self._relay.remote()
        cluster_gpus = ray.cluster_resources().get("GPU", 0)
        refs = {}
        for index, job in enumerate(jobs):
            threads = torch.get_num_threads() if job.settings.deterministic else CPUS_PER_RUN  # as the process executor
            task = self._task.options(num_cpus=CPUS_PER_RUN, num_gpus=gpu_request(job, cluster_gpus),
                                      max_retries=self.retries, retry_exceptions=False, name=job.name)
            refs[task.remote(job_to_json(job), relay, markers[job.workspace], threads)] = index
        try:
            return self._supervise(refs, jobs, relay, emit, cancel)
        finally:
            ray.kill(relay)
            for workspace, marker in markers.items():
                (Path(workspace) / marker).unlink(missing_ok=True)

    def _supervise(self, refs: dict, jobs: Sequence[Job], relay, emit: EventSink,
                   cancel: CancelToken) -> list[FinishedRun]:
        ray = _ray()
        finished: list[list[FinishedRun] | None] = [None] * len(jobs)
        failure: LungKDError | None = None
        waiting, stopping = list(refs), False
        starts: Counter[str] = Counter()
        with counting_interrupts() as interrupts:
            try:
                while waiting and interrupts.count < 2:  # a second Ctrl-C: stop every task at once (below)
                    if interrupts.came:  # Ctrl-C: a cancel for every task, then say so
                        cancel.cancel()
                    ready, waiting = ray.wait(waiting, num_returns=len(waiting), timeout=FLUSH_INTERVAL_S)
                    for text in ray.get(relay.drain.remote()):  # before the outcomes: a run's events come first
                        self._relay_event(Event(**json.loads(text)), starts, emit)
                    for ref in ready:  # the first failure is the one raised
                        error = self._collect(ref, jobs[refs[ref]], refs[ref], finished, emit)
                        failure = failure or error
                    if (cancel.is_set() or failure is not None) and not stopping:
                        stopping = True
                        relay.cancel.remote()
            finally:
                for ref in waiting:  # only after an unexpected error or a second Ctrl-C
                    ray.cancel(ref, force=True)
        if interrupts.came:
            raise KeyboardInterrupt
        if failure is not None:
            raise failure
        if cancel.is_set():
            raise Cancelled("training cancelled; every run keeps its last finished epoch and resumes from it.")
        return [run for runs in finished for run in runs]

    def _collect(self, ref, job: Job, index: int, finished: list, emit: EventSink) -> LungKDError | None:
        """The outcome of a finished task into `finished`; the error it ended with, if any."""
        ray = _ray()
        try:
            outcome = ray.get(ref)
        except ray.exceptions.RayError as exc:  # its retries are spent, or the cluster failed
            failure = WorkerError(
                f"{job.name} failed on the Ray cluster after {self.retries} retries: "
                f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}",
                fix="look for the system killing it (out of memory, a lost node) in `ray status` "
                    "and the cluster's logs; the same command resumes from the last finished epoch.")
            emit(Event(job.stage, "failed", failure.problem.message, run=job.name, data=job.describe()))
            return failure
        if is_cancel(outcome):
            return None
        try:
            finished[index] = runs_from_outcome(outcome, job.name, outcome["where"])
        except LungKDError as exc:
            return exc
        return None

    @staticmethod
    def _relay_event(event: Event, starts: Counter, emit: EventSink) -> None:
        if event.kind == "notice" and event.data.get("executor") == "ray":
            starts[event.run] += 1
            if starts[event.run] > 1:
                emit(Event(event.stage, "notice", f"its worker died; Ray runs it again (attempt {starts[event.run]}), "
                           "from its last finished epoch", run=event.run, data={"executor": "ray"}))
        emit(event)
