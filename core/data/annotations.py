"""ICBHI-style cycle annotation files: one cycle per line, `start end crackle wheeze` (docs/method.md section 2)."""
from __future__ import annotations

import itertools
import math
from pathlib import Path

from lungkd.core.errors import Problem
from lungkd.core.data.records import Cycle
from lungkd.core.data.textfiles import read_text_lines

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
    return parse_annotation_lines(text.splitlines(), recording, path)


def parse_annotation_lines(lines: list[str], recording: str, path: str | Path | None = None
                           ) -> tuple[list[Cycle], list[Problem]]:
    cycles: list[Cycle] = []
    problems: list[Problem] = []
    for line_no, raw in enumerate(lines, start=1):
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


NO_USABLE_CYCLE = "no usable cycle in this annotation file."


def read_annotation_file(path: str | Path, recording: str | None = None) -> tuple[list[Cycle], list[Problem]]:
    """Cycles and problems of an annotation file; DataError when it cannot be read at all (permission, not
    text, absurdly large)."""
    path = Path(path)
    lines = read_text_lines(path, "annotation file", _FORMAT_FIX)
    cycles, problems = parse_annotation_lines(lines, recording or path.stem, path)
    if not cycles:
        problems.append(Problem(str(path), NO_USABLE_CYCLE, _FORMAT_FIX))
    return cycles, problems


def pick_annotation(candidates: list[Path]) -> tuple[Path, list[Problem]]:
    """One annotation among files of the same name (`X.txt` and `X.TXT`): `.txt` first, then by name; the
    others are named in a warning. Every command picks the same one."""
    ordered = sorted(candidates, key=lambda p: (p.suffix != ".txt", str(p)))
    chosen, others = ordered[0], ordered[1:]
    if not others:
        return chosen, []
    return chosen, [Problem(str(other), f"a second annotation of the recording '{chosen.stem}'; {chosen.name} is used "
                            "and this one is left out.", "delete or rename the one that is wrong.") for other in others]


def annotation_beside(audio: str | Path) -> tuple[Path | None, list[Problem]]:
    """The annotation of a recording: the file of the same name beside it ending in .txt in any letter case
    (`pick_annotation` when there are several); None when there is none."""
    audio = Path(audio)
    found: dict[tuple[int, int], Path] = {}  # by file identity: a case-insensitive file system finds one file 8 ways
    for letters in itertools.product(*(("t", "T"), ("x", "X"), ("t", "T"))):
        path = audio.with_suffix("." + "".join(letters))
        try:
            st = path.stat()
        except OSError:
            continue
        if path.is_file():
            found.setdefault((st.st_dev, st.st_ino), path)
    if not found:
        return None, []
    return pick_annotation(list(found.values()))


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
                                    "check that the annotation belongs to this recording.", cycle.line or None))
            continue
        if cycle.end > duration:
            problems.append(Problem(where, f"the cycle {cycle.start}-{cycle.end} s ends after the audio "
                                    f"({duration:.3f} s); its clip stops at the end of the audio.", "",
                                    cycle.line or None))
        if cycle.index != len(kept):
            cycle = Cycle(cycle.recording, len(kept), cycle.start, cycle.end, cycle.crackle, cycle.wheeze, cycle.line)
        kept.append(cycle)
    return tuple(kept), problems
