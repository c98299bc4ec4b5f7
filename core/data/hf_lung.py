"""HF_Lung V1/V2: 15-second recordings, each with `NAME_label.txt` beside it whose lines are intervals,
`I 00:00:01.234 00:00:02.345`: inspiration (I), expiration (E), discontinuous adventitious sound (D), Wheeze,
Rhonchi and Stridor, overlapping freely.

An inspiration and the expiration that follows it make one breathing cycle, from the start of one to the end
of the other; an adventitious interval marks every cycle it overlaps, through the label map
(core.data.label_maps). Time in no cycle is unlabelled, not normal: it is left out, and counted. Names are
`steth_YYYYMMDD_HH_MM_SS` (the Littmann 3200) or `trunc_YYYY-MM-DD-HH-MM-SS-Ln_k` (channel Ln of the 8-channel
HF-Type-1 device). The database names no patients: a recording day stands for one (so one patient's
recordings never fall on both sides of a patient-wise split; a day's other patients go with them).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from lungkd.core.data.label_maps import LabelMap, Tally, labelled_rows, target_flags
from lungkd.core.data.records import Cycle
from lungkd.core.data.textfiles import read_text_lines
from lungkd.core.errors import Problem

LABEL_SUFFIX = "_label"  # NAME_label.txt annotates NAME.wav
INSPIRATION, EXPIRATION = "I", "E"
# An expiration belongs to the inspiration before it when it starts at most this long after the inspiration
# ends: a breath's pause between them is far shorter, so a longer gap is time nobody labelled.
MAX_PHASE_GAP_S = 1.0
# The channels' places (HF_Lung V1 paper): L1/L2 right mid-clavicular line, L3/L4 right mid-axillary, L5/L6 left
# mid-clavicular, L7/L8 left mid-axillary; in ICBHI codes (anterior and lateral chest).
CHANNEL_LOCATIONS = {"L1": "Ar", "L2": "Ar", "L3": "Lr", "L4": "Lr", "L5": "Al", "L6": "Al", "L7": "Ll", "L8": "Ll"}
_STETH = re.compile(r"^steth_(?P<day>\d{8})_\d{2}_\d{2}_\d{2}$")
_TRUNC = re.compile(r"^trunc_(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})-\d{2}-\d{2}-\d{2}-(?P<channel>L\d)_\d+$")
_TIME = re.compile(r"^(?:(?P<h>\d+):)?(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:\.\d+)?)$")
_FORMAT_FIX = "each line must read `LABEL start end` with times as HH:MM:SS.mmm, e.g. `I 00:00:01.234 00:00:02.345`."


@dataclass(frozen=True)
class HfName:
    patient: str  # the recording day, standing for the patient the database does not name
    device: str
    location: str | None


def parse_hf_lung_name(stem: str) -> HfName | None:
    if match := _STETH.match(stem):
        return HfName(f"day {match['day']}", "Litt3200", None)
    if match := _TRUNC.match(stem):
        return HfName(f"day {match['y']}{match['m']}{match['d']}", "HF-Type-1", CHANNEL_LOCATIONS.get(match["channel"]))
    return None


def name_problem(stem: str, path: Path) -> Problem:
    return Problem(str(path), f"the name '{stem}' is neither HF_Lung's steth_DATE_TIME nor trunc_DATE-TIME-CHANNEL; "
                   "the recording is its own patient and its device and chest location are unknown.",
                   "keep the download's file names.")


def _seconds(text: str) -> float:
    match = _TIME.match(text)
    if not match:
        raise ValueError(f"'{text}' is not a time (HH:MM:SS.mmm)")
    return int(match["h"] or 0) * 3600 + int(match["m"]) * 60 + float(match["s"])


def _interval(fields: list[str]) -> tuple[float, float, str, None]:
    if len(fields) != 3:
        raise ValueError(f"expected 3 columns, found {len(fields)}")
    start, end = _seconds(fields[1]), _seconds(fields[2])
    if not (math.isfinite(start) and math.isfinite(end)) or start >= end:
        raise ValueError(f"the interval starts at {fields[1]}, not before its end at {fields[2]}")
    return start, end, fields[0], None


@dataclass(frozen=True)
class _Interval:
    label: str
    start: float
    end: float
    line: int


def _read_intervals(path: Path, label_map: LabelMap, tally: Tally
                    ) -> tuple[list[_Interval], list[_Interval], list[Problem]]:
    """Breathing phases and adventitious intervals (with their map target as label) of a label file."""
    phases, sounds, problems = [], [], []
    lines = read_text_lines(path, "HF_Lung label file", _FORMAT_FIX)
    rows = ((n, raw.split()) for n, raw in enumerate(lines, start=1) if raw.split())
    for line_no, start, end, target, _ in labelled_rows(rows, _interval, label_map, tally, problems, what="intervals",
                                                        path=path, fix=_FORMAT_FIX,
                                                        phases=(INSPIRATION, EXPIRATION)):
        if target in (INSPIRATION, EXPIRATION):
            phases.append(_Interval(target, start, end, line_no))
        elif target is not None:
            sounds.append(_Interval(target, start, end, line_no))
    return phases, sounds, problems


def _joined_cycles(phases: list[_Interval], tally: Tally) -> list[tuple[float, float, int]]:
    """(start, end, line) of each inspiration joined with the expiration right after it (within MAX_PHASE_GAP_S),
    in time order."""
    phases = sorted(phases, key=lambda p: (p.start, p.end))
    cycles, i = [], 0
    while i < len(phases):
        phase = phases[i]
        following = phases[i + 1] if i + 1 < len(phases) else None
        if (phase.label == INSPIRATION and following is not None and following.label == EXPIRATION
                and following.start - phase.end <= MAX_PHASE_GAP_S):
            cycles.append((phase.start, max(phase.end, following.end), phase.line))
            i += 2
            continue
        if phase.label == INSPIRATION:
            tally.leave_out("inspirations", "with no expiration right after them")
        else:
            tally.leave_out("expirations", "with no inspiration right before them")
        i += 1
    return cycles


def read_hf_lung_labels(path: Path, recording: str, label_map: LabelMap, tally: Tally
                        ) -> tuple[list[Cycle], list[Problem]]:
    """The breathing cycles of one label file with their classes; DataError when it cannot be read at all."""
    phases, sounds, problems = _read_intervals(path, label_map, tally)
    cycles = []
    joined = _joined_cycles(phases, tally)
    marked = [False] * len(sounds)
    for start, end, line in joined:
        crackle = wheeze = 0
        for n, sound in enumerate(sounds):
            if sound.start < end and sound.end > start:
                c, w = target_flags(sound.label)
                crackle, wheeze, marked[n] = crackle | c, wheeze | w, True
        cycles.append(Cycle(recording, len(cycles), start, end, crackle, wheeze, line))
    outside = marked.count(False)
    if outside:
        tally.leave_out("intervals", "of adventitious sound in no joined cycle", outside)
    return cycles, problems
