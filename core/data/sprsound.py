"""SPRSound, the SJTU paediatric respiratory sound database (BioCAS 2022-2025 challenge releases): one JSON file
per WAV, `{"record_annotation": "CAS", "event_annotation": [{"start": "2771", "end": "3829", "type": "Wheeze"}]}`,
times in milliseconds (as text or numbers), and names `patient_age_gender_location_recording`.

Each respiratory event becomes a cycle, its type mapped to the four classes (core.data.label_maps). A recording
annotated "Poor Quality" is left out whole. The official split is the folders (train, inter- and intra-subject
test), read by core.data.labelled_folders.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from lungkd.core.data.label_maps import LabelMap, Tally, UnknownLabel, target_flags, time_value
from lungkd.core.data.records import Cycle, Patient
from lungkd.core.data.textfiles import read_text_lines
from lungkd.core.errors import DataError, Problem

DEVICE = "Yunting"  # every SPRSound recording was made with a Yunting model II stethoscope
POOR_QUALITY = "Poor Quality"
RECORD_KEYS = ("record_annotation", "recording_annotation")  # the README's example uses the second spelling
# p1-p4 in the ICBHI codes prompts know (core.data.prompts.LOCATION_WORDS); the 2024 release's p5-p8 are not
# described, so they stay unknown
LOCATIONS = {"p1": "Pl", "p2": "Ll", "p3": "Pr", "p4": "Lr"}
SEXES = {"0": "M", "1": "F"}
_NAME = re.compile(r"^(?P<patient>\d+)_(?P<age>\d+(?:\.\d+)?)_(?P<gender>[01])_(?P<location>p\d+)_(?P<number>\d+)$")
_FORMAT_FIX = ('each event is {"start": "2771", "end": "3829", "type": "Wheeze"} with times in milliseconds, '
               "as in the SPRSound download.")


@dataclass(frozen=True)
class SprName:
    patient: str
    age: float
    sex: str  # "M" / "F"
    location: str | None  # ICBHI code, None for a location SPRSound does not describe
    number: str


def parse_sprsound_name(stem: str) -> SprName | None:
    match = _NAME.match(stem)
    if not match:
        return None
    return SprName(match["patient"], float(match["age"]), SEXES[match["gender"]], LOCATIONS.get(match["location"]),
                   match["number"])


def name_problem(stem: str, path: Path) -> Problem:
    return Problem(str(path), f"the name '{stem}' is not SPRSound's patient_age_gender_location_recording; the "
                   "recording is its own patient, and its age, sex and chest location are unknown.",
                   "keep the download's file names (e.g. 65058931_3.4_1_p2_1086.wav).")


def patient_facts(name: SprName) -> Patient:
    return Patient(name.patient, age=name.age, sex=name.sex)


def _event(event, number: int) -> tuple[float, float, str]:
    """(start s, end s, type) of one event, or ValueError with the reason."""
    if not isinstance(event, dict):
        raise ValueError(f"event {number} of event_annotation is not an object")
    missing = [key for key in ("start", "end", "type") if key not in event]
    if missing:
        raise ValueError(f"event {number} of event_annotation has no {' or '.join(missing)}")
    try:
        start = time_value(event["start"], "start", "milliseconds") / 1000
        end = time_value(event["end"], "end", "milliseconds") / 1000
    except ValueError as reason:
        raise ValueError(f"event {number}: {reason}") from None
    if start >= end:
        raise ValueError(f"event {number} starts at {start:g} s, not before its end at {end:g} s")
    if not isinstance(event["type"], str) or not event["type"].strip():
        raise ValueError(f"event {number} has no event type")
    return start, end, event["type"].strip()


def _document(path: Path) -> dict:
    """The parsed JSON object; DataError naming the file (and the line JSON broke on) otherwise."""
    text = "\n".join(read_text_lines(path, "SPRSound annotation file", _FORMAT_FIX))
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc.msg}); the recording's annotation is left out.", path=path,
                        line=exc.lineno, fix="replace the file with the one from the SPRSound download.") from None
    if not isinstance(document, dict) or not isinstance(document.get("event_annotation"), list):
        raise DataError("no event_annotation list; the recording's annotation is left out.", path=path,
                        fix="replace the file with the one from the SPRSound download.")
    return document


def read_sprsound_annotation(path: Path, recording: str, label_map: LabelMap, tally: Tally
                             ) -> tuple[list[Cycle], list[Problem], bool]:
    """The cycles of one JSON annotation, the problems of its events, and whether the recording is left out
    whole (annotated Poor Quality). DataError when the file is not an SPRSound annotation at all."""
    document = _document(path)
    events = document["event_annotation"]
    record = next((document[key] for key in RECORD_KEYS if key in document), None)
    if isinstance(record, str) and record.strip().casefold() == POOR_QUALITY.casefold():
        tally.leave_out("recordings", f"annotated {POOR_QUALITY}")
        if events:
            tally.leave_out("events", f"in recordings annotated {POOR_QUALITY}", len(events))
        return [], [], True
    cycles: list[Cycle] = []
    problems: list[Problem] = []
    for number, event in enumerate(events, start=1):
        try:
            start, end, label = _event(event, number)
            target = label_map.apply(label, tally, "events")
        except UnknownLabel as unknown:
            problems.append(Problem(str(path), f"event {number}: {unknown}; event skipped.", unknown.fix))
            continue
        except ValueError as reason:
            problems.append(Problem(str(path), f"{reason}; event skipped.", _FORMAT_FIX))
            tally.leave_out("events", "unreadable (named in the warnings)")
            continue
        if target is None:
            continue
        crackle, wheeze = target_flags(target)
        cycles.append(Cycle(recording, len(cycles), start, end, crackle, wheeze))
    return cycles, problems, False
