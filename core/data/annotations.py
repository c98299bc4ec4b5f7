"""ICBHI-style cycle annotation files: one cycle per line, `start end crackle wheeze` (docs/method.md section 2)."""
from __future__ import annotations

import math
from pathlib import Path

from lungkd.core.errors import DataError, Problem
from lungkd.core.data.records import Cycle

_FORMAT_FIX = "each line must read `start_s end_s crackle(0/1) wheeze(0/1)`, e.g. `0.036 0.579 0 0`."


def _parse_line(fields: list[str]) -> tuple[float, float, int, int]:
    """Values of one line, or ValueError with the reason."""
    if len(fields) != 4:
        raise ValueError(f"expected 4 columns, found {len(fields)}")
    try:
        start, end = float(fields[0]), float(fields[1])
    except ValueError:
        raise ValueError(f"times '{fields[0]}' and '{fields[1]}' are not numbers") from None
    if not (math.isfinite(start) and math.isfinite(end)):
        raise ValueError("times must be finite numbers")
    if fields[2] not in ("0", "1") or fields[3] not in ("0", "1"):
        raise ValueError(f"crackle and wheeze must be 0 or 1, found '{fields[2]}' and '{fields[3]}'")
    if start < 0 or end < 0:
        raise ValueError(f"negative time ({start} to {end})")
    if start >= end:
        raise ValueError(f"the cycle starts at {start} s, not before its end at {end} s")
    return start, end, int(fields[2]), int(fields[3])


def parse_annotation_text(text: str, recording: str, path: str | Path | None = None) -> tuple[list[Cycle], list[Problem]]:
    """Cycles of an annotation file; a bad line becomes a Problem and the other lines still load."""
    cycles: list[Cycle] = []
    problems: list[Problem] = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split()
        if not fields:
            continue
        try:
            start, end, crackle, wheeze = _parse_line(fields)
        except ValueError as reason:
            problems.append(Problem(str(path) if path else recording, f"{reason}; line skipped.", _FORMAT_FIX, line_no))
            continue
        cycles.append(Cycle(recording, len(cycles), start, end, crackle, wheeze, line_no))
    return cycles, problems


def read_annotation_file(path: str | Path, recording: str | None = None) -> tuple[list[Cycle], list[Problem]]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise DataError("not a text annotation file (it is not UTF-8 text).", path=path, fix=_FORMAT_FIX) from None
    cycles, problems = parse_annotation_text(text, recording or path.stem, path)
    if not cycles:
        problems.append(Problem(str(path), "no usable cycle in this annotation file.", _FORMAT_FIX))
    return cycles, problems


def clip_cycles_to_duration(cycles: list[Cycle] | tuple[Cycle, ...], duration: float, path: str | Path | None
                            ) -> tuple[tuple[Cycle, ...], list[Problem]]:
    """Cycles that end past the audio are kept as annotated and said so: their clip stops at the end of the
    resampled audio, in samples, as in the reference (core.features.prepare.cycle_span). Cycles that start
    after the audio ends hold no sound and are dropped, with a warning."""
    kept: list[Cycle] = []
    problems: list[Problem] = []
    where = str(path) if path else None
    for cycle in cycles:
        if cycle.start >= duration:
            problems.append(Problem(where, f"the cycle {cycle.start}-{cycle.end} s starts after the audio ends "
                                    f"({duration:.3f} s); cycle skipped.",
                                    "check that the annotation belongs to this recording.", cycle.line))
            continue
        if cycle.end > duration:
            problems.append(Problem(where, f"the cycle {cycle.start}-{cycle.end} s ends after the audio "
                                    f"({duration:.3f} s); its clip stops at the end of the audio.", "", cycle.line))
        if cycle.index != len(kept):
            cycle = Cycle(cycle.recording, len(kept), cycle.start, cycle.end, cycle.crackle, cycle.wheeze, cycle.line)
        kept.append(cycle)
    return tuple(kept), problems
