"""What a person changed in an annotation, and who and when: one JSON line per save, appended to
`NAME.history.jsonl` beside the annotation `NAME.txt` (annotation_io.save_annotation writes it; the visit
report reads it). A line holds when it was saved (UTC, ISO 8601), the user's name as the operating system knows
it, the annotation's file name and digests before and after, the editor's own words for the edits where it
gives them (the Studio's undo texts: "Split cycle 3 at 2.500 s"), and the changes found by comparing the
cycles before and after: cycles added or removed, classes changed.

Only appended, never rewritten: a line that cannot be read (a file cut short by a crash, a hand edit) is
reported with its line number and the others are kept.
"""
from __future__ import annotations

import getpass
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from lungkd.core.data.textfiles import read_text_lines
from lungkd.core.errors import Problem
from lungkd.core.labels import CLASS_NAMES

HISTORY_SUFFIX = ".history.jsonl"
_FIX = "each line is one JSON object as LungKD writes it; remove or correct the line."


@dataclass(frozen=True)
class EditRecord:
    saved: str  # when, UTC ISO 8601
    user: str  # who, as the operating system names the user
    annotation: str  # the annotation file's name
    changes: list[str]  # what, found by comparing the cycles before and after
    actions: list[str] = field(default_factory=list)  # what, in the editor's words (its undo texts)
    previous_digest: str | None = None  # sha256 of the file before; None: there was none
    digest: str = ""  # sha256 of the file written


def history_path_for(annotation: str | Path) -> Path:
    """`NAME.history.jsonl` beside `NAME.txt`."""
    annotation = Path(annotation)
    return annotation.with_name(annotation.stem + HISTORY_SUFFIX)


def user_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no password entry (a container's numeric user)
        return "unknown user"


def _span_words(span) -> str:
    label = "no class" if span.label is None else CLASS_NAMES[span.label]
    return f"{span.start:.3f}–{span.end:.3f} s ({label})"


def changes_between(before: Iterable, after: Iterable) -> list[str]:
    """The cycles (start, end, label) added, removed or given another class, in time order."""
    old = {(s.start, s.end): s for s in before}
    new = {(s.start, s.end): s for s in after}
    changes = []
    for bounds in sorted(old.keys() | new.keys()):
        a, b = old.get(bounds), new.get(bounds)
        if a is None:
            changes.append(f"added the cycle {_span_words(b)}")
        elif b is None:
            changes.append(f"removed the cycle {_span_words(a)}")
        elif a.label != b.label:
            words = lambda label: "no class" if label is None else CLASS_NAMES[label]  # noqa: E731
            changes.append(f"changed the class of the cycle {a.start:.3f}–{a.end:.3f} s from {words(a.label)} to "
                           f"{words(b.label)}")
    return changes


def append_edit(annotation: Path, record: EditRecord) -> Path:
    """Appends the record as one line to the annotation's history; returns the history's path."""
    path = history_path_for(annotation)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")
    return path


def new_record(annotation: Path, before: list, after: list, actions: list[str], previous_digest: str | None,
               digest: str) -> EditRecord:
    return EditRecord(datetime.now(timezone.utc).isoformat(timespec="seconds"), user_name(), annotation.name,
                      changes_between(before, after), list(actions), previous_digest, digest)


def read_edit_history(annotation: str | Path) -> tuple[list[EditRecord], list[Problem]]:
    """The annotation's saves, oldest first (none when it has no history); a line that cannot be read is a
    Problem naming it, and the others are kept."""
    path = history_path_for(annotation)
    if not path.exists():
        return [], []
    records, problems = [], []
    for number, line in enumerate(read_text_lines(path, "edit history", _FIX), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
            records.append(EditRecord(**{k: value[k] for k in EditRecord.__dataclass_fields__ if k in value}))
        except (ValueError, TypeError, KeyError) as exc:
            problems.append(Problem(str(path), f"line {number} is not a save LungKD wrote ({exc}); it was left out.",
                                    _FIX, number))
    return records, problems
