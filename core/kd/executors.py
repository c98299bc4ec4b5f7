"""Executors run independent training jobs (teachers, student seeds) and relay their events.

Jobs are plain data (core.kd.jobs: a RunJob trains one model, a TogetherJob several as one batched model),
so an executor may run them in this process, in child processes or on a cluster; whatever it does, events
reach `emit` in the calling thread and the cards come back in job order (a TogetherJob's members in turn).
"""
from __future__ import annotations

from typing import Protocol, Sequence

from lungkd.core.cancel import CancelToken
from lungkd.core.kd.jobs import EventSink, Job, RunContext, execute


class Executor(Protocol):
    def run(self, jobs: Sequence[Job], emit: EventSink, cancel: CancelToken) -> list[dict]: ...


class InProcessExecutor:
    """One job after another in this process, sharing prepared inputs between them."""

    def __init__(self) -> None:
        self.context = RunContext()

    def run(self, jobs: Sequence[Job], emit: EventSink, cancel: CancelToken) -> list[dict]:
        return [card for job in jobs for card in execute(job, emit, cancel, self.context)]
