"""Typed engine events: what the CLI prints, the GUI shows and the experiment's event log keeps."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Literal

EventKind = Literal["started", "progress", "metrics", "artifact", "finished", "failed", "cancelled", "notice"]


@dataclass
class Event:
    stage: str  # "teachers", "logits", "ensembles", "students", "second_generation", "report", "experiment"
    kind: EventKind
    message: str = ""
    run: str | None = None  # e.g. "teacher seed 2", "student cnn6 mean_3 seed 1"
    step: int | None = None
    total: int | None = None
    eta_s: float | None = None
    data: dict = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)


class EventLog:
    """Appends events as JSON lines. Step progress is thinned to one line per `interval_s` per run,
    so a 200-epoch log stays readable; every other kind is kept."""

    def __init__(self, path: Path, interval_s: float = 5.0):
        self.path = path
        self.interval_s = interval_s
        self._last_progress: dict[str | None, float] = {}

    def __call__(self, event: Event) -> None:
        self.write(event)

    def write(self, event: Event) -> None:
        if event.kind == "progress":
            if event.time - self._last_progress.get(event.run, 0.0) < self.interval_s:
                return
            self._last_progress[event.run] = event.time
        with self.path.open("a", encoding="utf-8") as f:
            f.write(event.to_json() + "\n")


def read_events(path: Path) -> list[Event]:
    """The events of a log; a line cut short by a killed process is skipped."""
    events = []
    if not path.exists():
        return events
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(Event(**json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            continue
    return events


EventCallback = Callable[[Event], None]


def broadcast(*sinks: EventCallback | None) -> EventCallback:
    """One callback that hands each event to every sink in turn (None sinks are skipped)."""
    active = [s for s in sinks if s is not None]

    def emit(event: Event) -> None:
        for sink in active:
            sink(event)
    return emit
