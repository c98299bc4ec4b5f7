"""What an experiment tells people while it runs: each event as a sentence (the command line and the
wizard's log print the same words), and the time left for the whole experiment, not just the model in
training.

The estimate counts the training steps still ahead: the running model's own estimate, plus for each model
not yet started its epochs times its steps per epoch at the speed measured so far on the same
architecture and batch size (or, before that, at the per-cycle speed of whatever trained last). Teachers
trained together are one group: its progress is theirs, and a step of it counts as one step of each. Data
preparation, evaluation and the report are left out, so it is a floor rather than a promise.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from lungkd.core.events import Event, EventCallback


def _scores(scores: dict | None) -> str:
    if not scores or scores.get("score") is None:
        return "no Score (a class is missing from the set)"
    return f"Score {scores['score']:.2f} (Sp {scores['sp']:.2f}, Se {scores['se']:.2f})"


def duration(seconds: float) -> str:
    """A duration as people say it: "40 s", "12 min", "3.5 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _run_sentence(event: Event) -> str | None:
    run, data = event.run[:1].upper() + event.run[1:], event.data
    if event.kind == "started":
        return f"{run}: training started."
    if event.kind == "metrics" and "epoch" in data:
        scores = ", ".join(f"{split} {_scores(data[split])}" for split in ("test", "val") if data.get(split))
        return f"{run}, epoch {data['epoch']} of {event.total}: loss {data['loss']:.4f}" + \
            (f", {scores}." if scores else ".")
    if event.kind == "notice":
        return f"{run}: {event.message}"
    if event.kind == "artifact":
        return f"{run}: model saved to {data['path']}."
    if event.kind == "finished":
        if event.message == "already trained":
            return f"{run}: already trained, reused."
        card = (data.get("run") or {}).get("card") or {}
        sentence = (f"{run} finished: epoch {card.get('selected_epoch')} chosen by {card.get('selection')}, "
                    f"test {_scores(card.get('test'))}.")
        note = card.get("selection_note")
        return f"{sentence} Note: {note}." if note else sentence
    if event.kind in ("failed", "cancelled"):
        return f"{run} {'stopped' if event.kind == 'cancelled' else 'failed'}: {event.message}"
    return None


def describe(event: Event) -> str | None:
    """The event as a sentence for a person, or None for events that only move a progress bar."""
    data = event.data
    if event.kind == "progress":
        return None
    if event.stage in ("teachers", "students") and event.run:
        return _run_sentence(event)
    if event.stage == "data":
        if event.kind == "finished" and event.run is None:
            stats = data.get("stats") or {}
            usable = stats.get("cycles_with_audio", {})
            return (f"Dataset {data.get('root')}: {stats.get('recordings')} recordings, "
                    f"{usable.get('train', 0)} training and {usable.get('test', 0)} test cycles with audio.")
        if event.kind == "finished":
            return f"{event.run} inputs ready: " + ", ".join(f"{n} {split}" for split, n in data.items()) + " cycles."
        if event.kind == "notice":
            return f"Dataset warning: {event.message}"
        return f"{event.message}…" if event.message else None
    if event.stage == "teachers" and event.kind == "started":
        return f"Training {event.message}."
    if event.stage == "logits" and event.kind == "finished":
        n, k = data["shape"][:2]
        return f"Teacher logits stored: {n} training cycles, {k} teachers."
    if event.stage == "ensembles" and event.kind == "metrics":
        k = event.run.removeprefix("first ")
        members = "teacher 1 alone" if k == "1" else f"the first {k} teachers"
        return f"Ensemble of {members}: {_scores(data)}."
    if event.stage == "second_generation" and event.kind == "metrics":
        return f"Second-generation ensemble of {data['k']} {data['arch']} students ({data['labels']}): {_scores(data)}."
    if event.stage == "report" and event.kind == "artifact":
        return f"Report written: {data['path']}."
    if event.stage == "experiment":
        if event.kind == "started":
            return f"Experiment {event.message} started."
        if event.kind == "finished":
            return f"Experiment finished in {duration(data.get('seconds', 0.0))}."
        if event.kind == "cancelled":
            return "Experiment stopped; everything finished is kept, and running it again continues from there."
        if event.kind == "failed":
            return f"Experiment failed: {event.message}"
    if event.kind == "notice" and event.message:
        return event.message
    return None


@dataclass(frozen=True)
class PlannedRun:
    """A model the experiment will train: its run name (as in events), speed key and length."""

    name: str
    arch: str
    size: str
    batch_size: int
    epochs: int
    group: str | None = None  # the run name of the teachers it trains together with, as their events carry it

    @property
    def speed_key(self) -> tuple[str, str, int]:
        return self.arch, self.size, self.batch_size


class ExperimentClock:
    """Wraps an event callback: passes every event on and, at most once per `interval_s` while a model trains,
    adds an `experiment` progress event whose `eta_s` is the time left for the whole experiment and whose
    step / total count the models finished / planned."""

    def __init__(self, runs: list[PlannedRun], emit: EventCallback, interval_s: float = 1.0):
        self.runs = {run.name: run for run in runs}
        self.groups: dict[str, list[PlannedRun]] = {}
        for run in runs:
            if run.group is not None:
                self.groups.setdefault(run.group, []).append(run)
        self.emit = emit
        self.interval_s = interval_s
        self.finished: set[str] = set()
        self.seconds_per_step: dict[tuple[str, str, int], float] = {}
        self.cycles_per_epoch: float | None = None  # the training set, seen through steps x batch size
        self._last = -math.inf

    def __call__(self, event: Event) -> None:
        self.emit(event)
        group = self.groups.get(event.run or "", [])
        run = self.runs.get(event.run or "") or (group[0] if group else None)
        if run is None:
            return
        if event.kind == "finished":
            self.finished.update(r.name for r in group or [run])
        elif event.kind == "progress" and event.total and event.eta_s is not None:
            left = event.total - (event.step or 0)
            if left > 0:  # a group's step trains each of its members once
                self.seconds_per_step[run.speed_key] = event.eta_s / left / max(len(group), 1)
            self.cycles_per_epoch = event.total / run.epochs * run.batch_size
            now = time.monotonic()
            if now - self._last >= self.interval_s:
                self._last = now
                self.emit(Event("experiment", "progress", step=len(self.finished), total=len(self.runs),
                                eta_s=event.eta_s + self._seconds_ahead(run)))

    def _seconds_ahead(self, current: PlannedRun) -> float:
        """Seconds for the models neither finished nor the one training now."""
        if self.cycles_per_epoch is None:
            return 0.0
        # unknown until a step of this kind was timed with steps left (a one-step epoch reports none)
        current_speed = self.seconds_per_step.get(current.speed_key)
        total = 0.0
        for run in self.runs.values():
            if run.name in self.finished or run.name == current.name or (run.group and run.group == current.group):
                continue
            speed = self.seconds_per_step.get(run.speed_key)
            if speed is None and current_speed is not None:
                speed = current_speed / current.batch_size * run.batch_size
            steps = run.epochs * math.ceil(self.cycles_per_epoch / run.batch_size)
            total += steps * (speed or 0.0)
        return total
