"""Writing cycle annotations, and the Raven selection tables that carry cycles to and from bioacoustics tools.

ICBHI text is read by `annotations.py` (the one parser); this module writes it the way the dataset does:
`start<TAB>end<TAB>crackle<TAB>wheeze`, each time in its shortest exact decimal form (`0.036`, `2.45`, `30`),
one line per cycle ending in a newline. Every one of the 920 ICBHI annotation files comes back byte for
byte when parsed and written again (tests/core/test_annotation_io.py).

Saving is atomic (a temporary file renamed over the old one) and keeps the previous file as a numbered
backup beside it (`NAME.txt.~1~`, `.~2~`, … as GNU `cp --backup=numbered` names them; no `.txt` suffix,
so a dataset scan never takes a backup for an annotation). A file that changed on disk since it was read
is not overwritten unless the caller says so. Each save appends who changed what, and when, to the
annotation's edit history beside it (`NAME.history.jsonl`, edit_history.py).
"""
from __future__ import annotations

import csv
import hashlib
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from lungkd.core.data.annotations import annotation_beside, read_annotation_file
from lungkd.core.data.records import Cycle
from lungkd.core.data.textfiles import read_text_lines
from lungkd.core.data.edit_history import append_edit, new_record
from lungkd.core.errors import DataError, LungKDError, Problem
from lungkd.core.labels import CLASS_NAMES, flags_from_label
from lungkd.core.storage import write_text_atomic


@dataclass(frozen=True)
class Span:
    """One cycle as an editor holds it: where it is, and its class (None until someone sets it, as for
    cycles found by automatic segmentation)."""

    start: float
    end: float
    label: int | None = None

    @classmethod
    def from_cycle(cls, cycle: Cycle) -> "Span":
        return cls(cycle.start, cycle.end, cycle.label)


def format_seconds(seconds: float) -> str:
    """The dataset's number formatting: the shortest decimal that reads back as the same float, without
    an exponent or trailing zeros (0.036, 2.45, 30)."""
    return np.format_float_positional(float(seconds), trim="-")


def _is_forward(start: float, end: float) -> bool:
    """Whether a cycle starts before it ends, at finite non-negative times."""
    return math.isfinite(start) and math.isfinite(end) and 0 <= start < end


def _check_spans(spans: list[Span], path: Path, *, need_labels: bool) -> None:
    for number, span in enumerate(spans, start=1):
        where = f"cycle {number} ({span.start}-{span.end} s)"
        if not _is_forward(span.start, span.end):
            raise DataError(f"{where} does not start before it ends at a non-negative time; nothing was written.",
                            path=path, fix="move its boundaries so that it starts before it ends.")
        if need_labels and span.label is None:
            raise DataError(f"{where} has no class yet; an ICBHI annotation needs one for every cycle, so nothing "
                            "was written.", path=path,
                            fix="give it a class (N, C, W or B) or accept the model's prediction (A).")


def annotation_text(spans: Iterable[Span]) -> str:
    """ICBHI annotation text of labelled cycles, in the given order."""
    lines = []
    for span in spans:
        crackle, wheeze = flags_from_label(span.label)
        lines.append(f"{format_seconds(span.start)}\t{format_seconds(span.end)}\t{crackle}\t{wheeze}\n")
    return "".join(lines)


def annotation_path_for(audio: str | Path) -> Path:
    """Where a recording's annotation is read from and saved to: the one beside it (`annotation_beside`: .txt
    in any letter case), else `NAME.txt`."""
    found, _ = annotation_beside(audio)
    return found or Path(audio).with_suffix(".txt")


def file_digest(path: str | Path) -> str | None:
    """SHA-256 of the file's bytes, or None when there is no file: what an editor compares before saving."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


class AnnotationChanged(DataError):
    """The annotation file on disk is not the one the editor read: saving would lose someone's changes."""


def next_backup_path(path: Path) -> Path:
    """`NAME.txt.~N~` with N one above the highest backup already there."""
    backup = re.compile(re.escape(path.name) + r"\.~(\d+)~")
    taken = [int(m[1]) for p in path.parent.iterdir() if (m := backup.fullmatch(p.name))]
    return path.with_name(f"{path.name}.~{max(taken, default=0) + 1}~")


@dataclass(frozen=True)
class SavedAnnotation:
    path: Path
    backup: Path | None  # the previous file, kept; None when there was none
    digest: str  # of what was written: the editor's new reference
    history: Path | None = None  # the edit history the save was added to; None when it could not be written


def save_annotation(path: str | Path, spans: Iterable[Span], expected_digest: str | None, *,
                    overwrite_changes: bool = False, actions: Iterable[str] = ()) -> SavedAnnotation:
    """Write the cycles as ICBHI annotation text at `path`, atomically, keeping the previous file as a
    numbered backup. `expected_digest` is `file_digest` of the file as the editor read it (None: there was
    none); when the file on disk differs, AnnotationChanged is raised and nothing is written, unless
    `overwrite_changes` (the changed file then becomes the backup). The save, with the changes to the cycles
    and the editor's `actions` in words, is appended to the edit history beside the file."""
    path = Path(path)
    spans = list(spans)
    _check_spans(spans, path, need_labels=True)
    current = file_digest(path)
    if current != expected_digest and not overwrite_changes:
        happened = "was created" if expected_digest is None else ("was deleted" if current is None else "changed")
        raise AnnotationChanged(f"the annotation {happened} on disk after it was opened here; it was not "
                                "overwritten and your edits are not saved yet.", path=path,
                                fix="save anyway to keep your edits (the file on disk is kept as a numbered "
                                    "backup), or reopen the recording to see the file as it is now.")
    text = annotation_text(spans)
    before = _spans_before(path) if current is not None else []
    backup = None
    if current is not None:
        backup = next_backup_path(path)
        shutil.copy2(path, backup)
    write_text_atomic(path, text)
    digest = file_digest(path)
    try:
        history = append_edit(path, new_record(path, before, spans, list(actions), current, digest))
    except OSError:  # the annotation is saved; a history that cannot be written must not undo that
        history = None
    return SavedAnnotation(path, backup, digest, history)


def _spans_before(path: Path) -> list[Span]:
    """The cycles of the file about to be replaced, for the edit history (none when it cannot be read)."""
    try:
        return read_annotation_spans(path)[0]
    except LungKDError:
        return []


def read_annotation_spans(path: str | Path) -> tuple[list[Span], list[Problem]]:
    """The cycles of an ICBHI annotation file as spans, through the dataset's own parser."""
    cycles, problems = read_annotation_file(path)
    return [Span.from_cycle(c) for c in cycles], problems


# ---------------------------------------------------------------- Raven selection tables

RAVEN_COLUMNS = ("Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)",
                 "Class")
CLASS_COLUMNS = ("class", "annotation", "label")  # accepted on import, any case
_RAVEN_FIX = ("a Raven selection table is tab-separated with a header row naming at least 'Begin Time (s)' and "
              "'End Time (s)', and optionally a 'Class' column (normal, crackle, wheeze, both or N, C, W, B).")
_CLASS_WORDS = {**{name: i for i, name in enumerate(CLASS_NAMES)}, **{name[0]: i for i, name in enumerate(CLASS_NAMES)}}


def write_raven_table(path: str | Path, spans: Iterable[Span], high_freq_hz: float) -> None:
    """One selection per cycle on the spectrogram view, spanning 0 Hz to `high_freq_hz` (the recording's
    Nyquist frequency), with its class (empty when it has none). Written atomically."""
    path = Path(path)
    spans = list(spans)
    _check_spans(spans, path, need_labels=False)
    rows = ["\t".join(RAVEN_COLUMNS)]
    for number, span in enumerate(spans, start=1):
        rows.append("\t".join((str(number), "Spectrogram 1", "1", format_seconds(span.start), format_seconds(span.end),
                               "0", format_seconds(high_freq_hz),
                               "" if span.label is None else CLASS_NAMES[span.label])))
    write_text_atomic(path, "\n".join(rows) + "\n")


def read_raven_table(path: str | Path) -> tuple[list[Span], list[Problem]]:
    """Cycles of a Raven selection table, sorted by time. A selection listed once per view (Raven repeats it
    for the waveform and the spectrogram) counts once; a bad row is a Problem and the others still load."""
    path = Path(path)
    rows = list(csv.reader(read_text_lines(path, "Raven selection table", _RAVEN_FIX), delimiter="\t"))
    header = [name.strip() for name in rows[0]] if rows else []
    missing = [name for name in ("Begin Time (s)", "End Time (s)") if name not in header]
    if missing:
        raise DataError(f"no {' or '.join(repr(m) for m in missing)} column in the header row.", path=path, line=1,
                        fix=_RAVEN_FIX)
    column = {name.lower(): i for i, name in enumerate(header)}
    begin, end = header.index("Begin Time (s)"), header.index("End Time (s)")
    selection = column.get("selection")
    label_column = next((column[name] for name in CLASS_COLUMNS if name in column), None)
    spans: list[Span] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        cells = [cell.strip() for cell in row] + [""] * (len(header) - len(row))
        if selection is not None and cells[selection]:
            if cells[selection] in seen:
                continue
            seen.add(cells[selection])
        try:
            start, stop = float(cells[begin]), float(cells[end])
        except ValueError:
            problems.append(Problem(str(path), f"begin '{cells[begin]}' and end '{cells[end]}' are not both numbers; "
                                    "row skipped.", "write the times in seconds, e.g. 1.25.", line))
            continue
        if not _is_forward(start, stop):
            problems.append(Problem(str(path), f"the selection {start}-{stop} s does not start before it ends at a "
                                    "non-negative time; row skipped.", "correct its begin and end times.", line))
            continue
        word = cells[label_column] if label_column is not None else ""
        label = _CLASS_WORDS.get(word.lower()) if word else None
        if word and label is None:
            problems.append(Problem(str(path), f"the class '{word}' is none of {', '.join(CLASS_NAMES)}; the cycle "
                                    "is imported without a class.", "write normal, crackle, wheeze or both (or N, C, "
                                    "W, B), or give it a class after importing.", line))
        spans.append(Span(start, stop, label))
    if not spans and not problems:
        problems.append(Problem(str(path), "the table has no selections.", _RAVEN_FIX))
    return sorted(spans, key=lambda s: (s.start, s.end)), problems
