"""Executors run independent training jobs (teachers, student seeds) and relay their events.

Jobs are plain data (core.kd.jobs.RunJob), so an executor may run them in this process, in child
processes or on a cluster; whatever it does, events reach `emit` in the calling thread and the cards come
back in job order.
"""
from __future__ import annotations

from typing import Protocol, Sequence

from lungkd.core.cancel import CancelToken
from lungkd.core.kd.jobs import EventSink, RunContext, RunJob, run_job


class Executor(Protocol):
    def run(self, jobs: Sequence[RunJob], emit: EventSink, cancel: CancelToken) -> list[dict]: ...


class InProcessExecutor:
    """One job after another in this process, sharing prepared inputs between them."""

    def __init__(self) -> None:
        self.context = RunContext()

    def run(self, jobs: Sequence[RunJob], emit: EventSink, cancel: CancelToken) -> list[dict]:
        return [run_job(job, emit, cancel, self.context) for job in jobs]
