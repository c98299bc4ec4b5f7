"""ICBHI file names and the dataset's side files: split, demographics, diagnosis, per-patient location."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from lungkd.core.errors import DataError, Problem
from lungkd.core.data.records import Patient
from lungkd.core.data.textfiles import read_text_lines

LOCATIONS = ("Tc", "Al", "Ar", "Pl", "Pr", "Ll", "Lr")
MODES = ("sc", "mc")
DEVICES = ("AKGC417L", "LittC2SE", "Litt3200", "Meditron")

SPLIT_FILE = "ICBHI_challenge_train_test.txt"
DEMOGRAPHICS_FILE = "ICBHI_Challenge_demographic_information.txt"
DIAGNOSIS_FILE = "ICBHI_Challenge_diagnosis.txt"
METADATA_FILE = "metadata_with_location.txt"
NAME_DIFFERENCES_FILE = "filename_differences.txt"
SIDE_FILES = (SPLIT_FILE, DEMOGRAPHICS_FILE, DIAGNOSIS_FILE, METADATA_FILE, NAME_DIFFERENCES_FILE, "filename_format.txt")

_NAME = re.compile(r"^(?P<patient>\d+)_(?P<index>[^_]+)_(?P<location>[^_]+)_(?P<mode>[^_]+)_(?P<device>[^_]+)$")


@dataclass(frozen=True)
class RecordingName:
    patient: str
    recording_index: str
    location: str
    mode: str
    device: str

    @property
    def prefix(self) -> str:
        """Everything but the device: the part that old and new ICBHI names share."""
        return f"{self.patient}_{self.recording_index}_{self.location}_{self.mode}"


def parse_recording_name(stem: str) -> RecordingName | None:
    """Fields of `PID_RecIdx_Loc_Mode_Device`, or None when the name is not ICBHI-style."""
    match = _NAME.match(stem)
    if not match:
        return None
    return RecordingName(match["patient"], match["index"], match["location"], match["mode"], match["device"])


def name_problems(stem: str, name: RecordingName, path: Path) -> list[Problem]:
    """Warnings for tokens outside the ICBHI vocabulary (the recording is still used)."""
    problems = []
    for what, value, allowed in (("chest location", name.location, LOCATIONS), ("acquisition mode", name.mode, MODES),
                                 ("device", name.device, DEVICES)):
        if value not in allowed:
            problems.append(Problem(str(path), f"unknown {what} '{value}' in the name '{stem}'.",
                                    f"rename the file with one of {', '.join(allowed)}, or expect it to be left out "
                                    f"of prompts and per-{what.split()[-1]} statistics."))
    return problems


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """Non-blank lines split into fields; DataError naming the file when it cannot be read."""
    lines = read_text_lines(path, "dataset file", "replace it with the file from the ICBHI download.")
    return [(n, line.split()) for n, line in enumerate(lines, start=1) if line.strip()]


def read_split_file(path: Path) -> tuple[dict[str, str], list[Problem]]:
    """`name<TAB>train|test` per line; bad lines are reported and skipped, and so is a second line for a
    recording already listed (the first one counts)."""
    split: dict[str, str] = {}
    first_line: dict[str, int] = {}
    problems: list[Problem] = []
    for line_no, fields in _read_rows(path):
        if len(fields) != 2 or fields[1] not in ("train", "test"):
            problems.append(Problem(str(path), f"expected `name<TAB>train|test`, found '{' '.join(fields)}'; line skipped.",
                                    "fix or delete the line.", line_no))
            continue
        name, side = fields
        if name in split:
            same = split[name] == side
            problems.append(Problem(
                str(path), f"'{name}' is listed again (first on line {first_line[name]}"
                f"{'' if same else ', as ' + split[name]}); this line is skipped.",
                "delete the duplicate line" + ("." if same else " and keep the split the recording belongs to."),
                line_no))
            continue
        split[name], first_line[name] = side, line_no
    return split, problems


def _number(value: str) -> float | None:
    return None if value.upper() == "NA" else float(value)


# What a person can measure: ages in years, BMI, weight in kg, height in cm. Outside these a value is a typo.
PLAUSIBLE = {"age": (0.0, 125.0), "adult_bmi": (5.0, 150.0), "child_weight_kg": (0.2, 300.0),
              "child_height_cm": (20.0, 250.0)}


def _implausible(record: dict, path: Path, line_no: int) -> list[Problem]:
    """Values no patient has (negative, not finite, out of range) become missing, each with a warning."""
    problems = []
    for key, (low, high) in PLAUSIBLE.items():
        value = record.get(key)
        if value is not None and not (math.isfinite(value) and low <= value <= high):
            record[key] = None
            problems.append(Problem(str(path), f"{key.replace('_', ' ')} {value:g} is not plausible (expected "
                                    f"{low:g} to {high:g}); taken as missing (NA).",
                                    "correct the value, or write NA.", line_no))
    return problems


def read_patients(root: Path, files: dict[str, Path]) -> tuple[dict[str, Patient], list[Problem]]:
    """Patients from the demographics (or metadata_with_location), diagnosis and location files found."""
    fields_by_pid: dict[str, dict] = {}
    problems: list[Problem] = []

    def bad(path: Path, line_no: int, fields: list[str], expected: str) -> None:
        problems.append(Problem(str(path), f"expected {expected}, found '{' '.join(fields)}'; line skipped.",
                                "fix the line to match the ICBHI file.", line_no))

    def rows(path: Path) -> list[tuple[int, list[str]]]:
        try:
            return _read_rows(path)
        except DataError as exc:  # an unreadable side file costs its facts, not the dataset
            problems.append(exc.problem)
            return []

    for key in (DEMOGRAPHICS_FILE, METADATA_FILE):
        path = files.get(key)
        if path is None:
            continue
        columns = 6 if key == DEMOGRAPHICS_FILE else 7
        seen: dict[str, int] = {}
        for line_no, fields in rows(path):
            if len(fields) != columns:
                bad(path, line_no, fields, f"{columns} columns (PID age sex adult_BMI child_weight child_height"
                                           f"{' location' if columns == 7 else ''})")
                continue
            try:
                record = dict(age=_number(fields[1]), sex=None if fields[2] == "NA" else fields[2],
                              adult_bmi=_number(fields[3]), child_weight_kg=_number(fields[4]),
                              child_height_cm=_number(fields[5]))
            except ValueError:
                bad(path, line_no, fields, "numbers or NA in the age, BMI, weight and height columns")
                continue
            if fields[0] in seen:
                problems.append(Problem(str(path), f"patient {fields[0]} is listed again (first on line "
                                        f"{seen[fields[0]]}); this line is skipped.",
                                        "delete the duplicate line, keeping the right values.", line_no))
                continue
            seen[fields[0]] = line_no
            problems.extend(_implausible(record, path, line_no))
            if columns == 7:
                record["chest_location"] = fields[6]
            fields_by_pid.setdefault(fields[0], {}).update(record)
    path = files.get(DIAGNOSIS_FILE)
    if path is not None:
        for line_no, fields in rows(path):
            if len(fields) != 2:
                bad(path, line_no, fields, "`PID diagnosis`")
                continue
            fields_by_pid.setdefault(fields[0], {})["diagnosis"] = fields[1]
    return {pid: Patient(pid, **values) for pid, values in fields_by_pid.items()}, problems


def read_name_differences(path: Path) -> set[str]:
    """Old ICBHI names (`'101_1b1_Al_sc_AKGC417L'`) whose split entry uses the suffix _Meditron."""
    return {fields[0].strip("'\"") for _, fields in _read_rows(path)}


@dataclass(frozen=True)
class NameMatch:
    """A recording whose name differs from its split entry, and why they were matched."""

    file_name: str
    split_name: str
    reason: str

    def to_dict(self) -> dict:
        return {"file": self.file_name, "split": self.split_name, "reason": self.reason}


def match_split_names(names: list[str], split: dict[str, str], old_names: set[str]) -> list[NameMatch]:
    """Pair recordings missing from the split with the entry that differs only in the device suffix.

    The ICBHI download renamed 91 files (`filename_differences.txt`) and lists one more
    (`226_1b1_Pl_sc_LittC2SE`) under `_Meditron`. A pairing is made only when it is unambiguous:
    exactly one unclaimed split entry with the same patient, index, location and mode.
    """
    present = set(names)
    unclaimed: dict[str, list[str]] = {}
    for entry in split:
        if entry not in present and (parsed := parse_recording_name(entry)):
            unclaimed.setdefault(parsed.prefix, []).append(entry)
    matches = []
    for name in names:
        parsed = parse_recording_name(name)
        if name in split or parsed is None:
            continue
        candidates = unclaimed.get(parsed.prefix, [])
        if len(candidates) != 1:
            continue
        entry = candidates.pop()
        reason = ("listed in filename_differences.txt" if name in old_names
                  else "same patient, index, location and mode; only the device suffix differs")
        matches.append(NameMatch(name, entry, reason))
    return matches
