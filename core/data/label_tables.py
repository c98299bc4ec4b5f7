"""Labels people keep themselves: a table (CSV or TSV) with the columns `file, start, end, label` (seconds, and
optionally `patient` and `split`), one row per cycle of any recording; or an Audacity label track exported
beside each recording (`NAME.txt`, one region per line: `start<TAB>end<TAB>label`).

Both are read with Python's csv module rather than a general annotation library (crowsetta reads Audacity
tracks and CSV sequences, but through pandas and pandera: it takes a file whole or refuses it, where LungKD
names each bad line and keeps the others, and it would bring pandas into the application for three columns).
Each row or region is a cycle whose label goes through the label map (core.data.label_maps).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from lungkd.core.data.label_maps import LabelMap, Tally, labelled_rows, target_flags, time_value
from lungkd.core.data.records import Cycle
from lungkd.core.data.textfiles import read_text_lines
from lungkd.core.errors import DataError, Problem

TABLE_EXTENSIONS = (".csv", ".tsv")
TABLE_COLUMNS = ("file", "start", "end", "label")
OPTIONAL_COLUMNS = ("patient", "split")
SPLIT_VALUES = ("train", "test")
_TABLE_FIX = "each row gives file, start and end in seconds, and a label, e.g. `rec01.wav,0.52,3.10,crackle`."
_TRACK_FIX = "each line is `start<TAB>end<TAB>label` in seconds, as Audacity exports a label track."


def _span(start_text: str, end_text: str) -> tuple[float, float]:
    start, end = time_value(start_text.strip(), "start"), time_value(end_text.strip(), "end")
    if start >= end:
        raise ValueError(f"the cycle starts at {start:g} s, not before its end at {end:g} s")
    return start, end


# ---------------------------------------------------------------- tables


def _delimiter(path: Path, header: str) -> str:
    if path.suffix.lower() == ".tsv":
        return "\t"
    return max(",;\t", key=header.count)  # Excel writes `;` where the decimal mark is a comma


def _columns(header: list[str]) -> dict[str, int] | None:
    """Where each known column is, when the header names the four required ones."""
    names = [name.strip().casefold() for name in header]
    if not set(TABLE_COLUMNS) <= set(names):
        return None
    return {name: names.index(name) for name in (*TABLE_COLUMNS, *OPTIONAL_COLUMNS) if name in names}


def is_label_table(path: Path) -> bool:
    """A CSV or TSV file whose first line names the columns file, start, end and label."""
    if path.suffix.lower() not in TABLE_EXTENSIONS:
        return False
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as f:
            header = f.readline(4096)
    except OSError:
        return False
    return _columns(next(csv.reader([header], delimiter=_delimiter(path, header)), [])) is not None


@dataclass
class TableRecording:
    """The rows of one recording in a table."""

    file: str  # as the table names it
    cycles: list[Cycle] = field(default_factory=list)
    patient: str | None = None
    split: str | None = None

    @property
    def stem(self) -> str:
        return Path(self.file.replace("\\", "/")).stem


def _table_row(row: list[str], columns: dict[str, int], width: int) -> dict[str, str]:
    if len(row) != width:
        raise ValueError(f"expected {width} columns as in the header, found {len(row)}")
    values = {name: row[i].strip() for name, i in columns.items()}
    if not values["file"]:
        raise ValueError("the file column is empty")
    if not values["label"]:
        raise ValueError("the label column is empty")
    if values.get("split") and values["split"].casefold() not in SPLIT_VALUES:
        raise ValueError(f"the split '{values['split']}' is neither train nor test")
    return values


def read_label_table(path: Path, label_map: LabelMap, tally: Tally
                     ) -> tuple[list[TableRecording], list[Problem]]:
    """The recordings a table names, each with its cycles in row order; DataError when it cannot be read or has
    no header naming file, start, end and label."""
    lines = read_text_lines(path, "label table", _TABLE_FIX)
    header = lines[0] if lines else ""
    rows = csv.reader(lines, delimiter=_delimiter(path, header))
    columns = _columns(next(rows, []))
    if columns is None:
        raise DataError(f"the first line does not name the columns {', '.join(TABLE_COLUMNS)}.", path=path,
                        fix="start the table with the line `file,start,end,label` (patient and split are optional).")
    width = len(next(csv.reader([header], delimiter=_delimiter(path, header))))
    recordings: dict[str, TableRecording] = {}
    problems: list[Problem] = []

    def parse(row: list[str]) -> tuple[float, float, str, dict[str, str]]:
        values = _table_row(row, columns, width)
        return *_span(values["start"], values["end"]), values["label"], values

    rows = ((n, row) for n, row in enumerate(rows, start=2) if any(cell.strip() for cell in row))
    for line_no, start, end, target, values in labelled_rows(rows, parse, label_map, tally, problems, what="cycles",
                                                             path=path, fix=_TABLE_FIX):
        entry = recordings.setdefault(values["file"], TableRecording(values["file"]))
        entry.patient = entry.patient or values.get("patient") or None
        entry.split = entry.split or (values.get("split") or "").casefold() or None
        if target is not None:
            entry.cycles.append(Cycle(entry.stem, len(entry.cycles), start, end, *target_flags(target), line_no))
    return list(recordings.values()), problems


# ---------------------------------------------------------------- Audacity label tracks


def _track_lines(lines: list[str]):
    """(line number, fields) of each region; Audacity's extended format adds a `\\ low high` frequency line
    under a region, which says nothing of time."""
    for line_no, raw in enumerate(lines, start=1):
        if raw.strip() and not raw.startswith("\\"):
            yield line_no, raw.rstrip("\r\n").split("\t")


def is_audacity_track(path: Path) -> bool:
    """A text file whose first region reads `start<TAB>end<TAB>label` with a label that is not a number (an ICBHI
    annotation has four numeric columns)."""
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as f:
            first = next(((n, fields) for n, fields in _track_lines(f.readlines(64 << 10))), None)
    except OSError:
        return False
    if first is None or len(first[1]) != 3:
        return False
    start, end, label = first[1]
    try:
        float(start), float(end)
    except ValueError:
        return False
    try:
        float(label)
    except ValueError:
        return bool(label.strip())
    return False


def read_audacity_track(path: Path, recording: str, label_map: LabelMap, tally: Tally
                        ) -> tuple[list[Cycle], list[Problem]]:
    """The cycles of one label track, a region per cycle; DataError when it cannot be read at all."""
    cycles: list[Cycle] = []
    problems: list[Problem] = []

    def parse(fields: list[str]) -> tuple[float, float, str, None]:
        if len(fields) != 3 or not fields[2].strip():
            raise ValueError("expected a start, an end and a label, separated by tabs")
        return *_span(fields[0], fields[1]), fields[2].strip(), None

    rows = _track_lines(read_text_lines(path, "Audacity label track", _TRACK_FIX))
    for line_no, start, end, target, _ in labelled_rows(rows, parse, label_map, tally, problems, what="cycles",
                                                        path=path, fix=_TRACK_FIX):
        if target is not None:
            cycles.append(Cycle(recording, len(cycles), start, end, *target_flags(target), line_no))
    return cycles, problems
