"""What is known of a recording's patient, for the prompts of models that read them (BTS), found where a user
keeps it. The first source that knows the recording gives all of it:

1. a table given on the command line (`lungkd predict --metadata FILE.csv`), one row per recording;
2. the sidecar `REC.patient.json` beside the recording `REC.wav` (the Studio's patient panel writes it);
3. the ICBHI side files (the demographics file and metadata_with_location.txt) in the recording's folder or
   its parent, read as a dataset's are (core.data.metadata.read_patients), by the patient id of its ICBHI name.

A sidecar or a table row speaks of one recording: its `chest_location` and `device` are the recording's own
(they stand for what an ICBHI name says). The side files speak of patients: their location column is the
per-patient one BTS reads. Values no patient has (an age of 300) are refused in a sidecar or table, naming
the file, the line and the field.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from lungkd.core.data.audio import AUDIO_EXTENSIONS
from lungkd.core.data.metadata import (DEMOGRAPHICS_FILE, LOCATIONS, METADATA_FILE, PLAUSIBLE, parse_recording_name,
                                      read_patients)
from lungkd.core.data.records import Patient
from lungkd.core.data.textfiles import read_text_lines
from lungkd.core.errors import DataError, Problem
from lungkd.core.storage import UnreadableFileError, json_text, read_regular_file, write_text_atomic

SIDECAR_SUFFIX = ".patient.json"
MAX_SIDECAR_BYTES = 64 << 10  # a sidecar is a hundred bytes
SIDE_FILE_FOLDERS = 2  # the recording's folder and its parent: ICBHI's audio may sit in a subfolder
SIDECAR_FIX = ('write it as JSON, e.g. {"age": 70, "sex": "F", "bmi": 33.0, "chest_location": "Al", '
               '"device": "AKGC417L"} (every field optional; docs/cli.md lists them), or delete it.')

class PatientMetadataError(DataError):
    """A sidecar `REC.patient.json` that cannot be read or is not valid: the user's statement, never ignored."""


DeviceName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._+-]{0,39}$")]


def _plausible(key: str):
    low, high = PLAUSIBLE[key]
    return Field(None, ge=low, le=high)


class PatientMetadata(BaseModel):
    """One recording's patient as a user states it: every field optional, each within what a person can be
    (core.data.metadata's PLAUSIBLE ranges; weight and height are a child's in ICBHI). `sex` is M or F;
    `chest_location` an ICBHI code."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    age: float | None = _plausible("age")  # years
    sex: Literal["M", "F"] | None = None
    bmi: float | None = _plausible("adult_bmi")
    weight_kg: float | None = _plausible("child_weight_kg")
    height_cm: float | None = _plausible("child_height_cm")
    chest_location: Literal[LOCATIONS] | None = None  # type: ignore[valid-type]
    device: DeviceName | None = None

    @field_validator("sex", mode="before")
    @classmethod
    def _sex_words(cls, value):
        words = {"m": "M", "male": "M", "f": "F", "female": "F"}
        return words.get(value.strip().lower(), value) if isinstance(value, str) else value

    @property
    def empty(self) -> bool:
        return all(value is None for value in self.model_dump().values())

    def patient(self, pid: str) -> Patient:
        return Patient(pid, age=self.age, sex=self.sex, adult_bmi=self.bmi, child_weight_kg=self.weight_kg,
                       child_height_cm=self.height_cm, chest_location=self.chest_location)

    @classmethod
    def of_patient(cls, patient: Patient) -> "PatientMetadata":
        """What the side files say of a patient, as the panel shows it."""
        return cls(age=patient.age, sex=patient.sex, bmi=patient.adult_bmi, weight_kg=patient.child_weight_kg,
                   height_cm=patient.child_height_cm,
                   chest_location=patient.chest_location if patient.chest_location in LOCATIONS else None)


def field_range(name: str) -> tuple[float, float]:
    """The values a number of PatientMetadata may take (what a person can be), for a form to offer."""
    bounds = {type(rule).__name__: rule for rule in PatientMetadata.model_fields[name].metadata}
    return bounds["Ge"].ge, bounds["Le"].le


@dataclass(frozen=True)
class PatientFacts:
    """What a prompt is built from for one recording, and where it came from."""

    patient: Patient  # age, sex, BMI or weight and height, and the chest location a prompt may read
    source: str  # in words, naming the file: "107_2b3_Al_mc_AKGC417L.patient.json", "the ICBHI side files in DIR"
    location: str | None = None  # the recording's own chest location, where the source gives one
    device: str | None = None  # the recording's device, where the source gives one
    metadata: PatientMetadata = field(default_factory=PatientMetadata)  # as a user would edit it


def _recording_pid(path: Path) -> str:
    parsed = parse_recording_name(path.stem)
    return parsed.patient if parsed else path.stem


def _stated(metadata: PatientMetadata, pid: str, source: str) -> PatientFacts:
    return PatientFacts(metadata.patient(pid), source, metadata.chest_location, metadata.device, metadata)


def _field_problem(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"]) or "the metadata"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = f"is not a field (the fields are {', '.join(PatientMetadata.model_fields)})"
    return f"{where}: {message}"


# ---------------------------------------------------------------- the sidecar


def sidecar_path(recording: str | Path) -> Path:
    """`REC.patient.json` beside `REC.wav`."""
    recording = Path(recording)
    return recording.with_name(recording.stem + SIDECAR_SUFFIX)


def read_sidecar(path: str | Path) -> PatientMetadata:
    """A sidecar's metadata; PatientMetadataError naming the file and the field when it is not one."""
    path = Path(path)
    try:
        raw = read_regular_file(path, MAX_SIDECAR_BYTES)
        document = json.loads(raw.decode("utf-8-sig"))
    except UnreadableFileError as exc:
        raise PatientMetadataError(f"the patient metadata is not read: {exc.reason}.", path=path,
                                   fix=SIDECAR_FIX) from None
    except OSError as exc:
        raise PatientMetadataError(f"the patient metadata cannot be read ({exc.strerror or exc}).", path=path,
                                   fix=SIDECAR_FIX) from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PatientMetadataError(f"the patient metadata is not JSON ({exc}).", path=path,
                                   fix=SIDECAR_FIX) from None
    if not isinstance(document, dict):
        raise PatientMetadataError("the patient metadata is not a JSON object.", path=path, fix=SIDECAR_FIX)
    try:
        return PatientMetadata.model_validate(document, strict=False)
    except ValidationError as exc:
        raise PatientMetadataError(f"the patient metadata is not valid ({_field_problem(exc)}).", path=path,
                                   fix=SIDECAR_FIX) from None


def write_sidecar(recording: str | Path, metadata: PatientMetadata) -> Path:
    """Writes the recording's sidecar atomically (a reader sees the old one or the new one, never half)."""
    path = sidecar_path(recording)
    write_text_atomic(path, json_text(metadata.model_dump(exclude_none=True)) + "\n")
    return path


# ---------------------------------------------------------------- a table of many recordings


TABLE_COLUMNS = ("recording", *PatientMetadata.model_fields)
TABLE_FIX = ("give a CSV file with a header row: recording (the file name, with or without its extension) and any "
             f"of {', '.join(TABLE_COLUMNS[1:])}; an empty cell or NA is unknown.")


@dataclass(frozen=True)
class PatientTable:
    """`lungkd predict --metadata FILE.csv`: the metadata of each recording it names, by recording name."""

    path: Path
    rows: dict[str, tuple[int, PatientMetadata]]  # recording name -> (line, metadata)

    def facts(self, recording: Path) -> PatientFacts | None:
        row = self.rows.get(recording.stem)
        if row is None:
            return None
        line, metadata = row
        return _stated(metadata, _recording_pid(recording), f"{self.path.name} line {line}")


def _recording_name(cell: str) -> str:
    name = cell.strip()
    return name[:-len(Path(name).suffix)] if Path(name).suffix.lower() in AUDIO_EXTENSIONS else name


def read_patient_table(path: str | Path) -> PatientTable:
    """The table's rows; DataError naming the file, the line and the column at the first bad cell."""
    path = Path(path)
    lines = read_text_lines(path, "metadata table", TABLE_FIX)
    reader = csv.reader(io.StringIO("\n".join(lines)))
    header = [cell.strip() for cell in next(reader, [])]
    unknown = [column for column in header if column not in TABLE_COLUMNS]
    if "recording" not in header or unknown or len(set(header)) != len(header):
        what = (f"unknown column(s) {', '.join(map(repr, unknown))}" if unknown else
                "a column named twice" if len(set(header)) != len(header) else "no 'recording' column")
        raise DataError(f"the header row has {what}.", path=path, line=1, fix=TABLE_FIX)
    rows: dict[str, tuple[int, PatientMetadata]] = {}
    for number, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            raise DataError(f"{len(cells)} cells where the header has {len(header)}.", path=path, line=number,
                            fix=TABLE_FIX)
        values = {column: cell.strip() for column, cell in zip(header, cells)}
        name = _recording_name(values.pop("recording"))
        if not name or name in rows:
            raise DataError(f"the recording '{name}' is listed again (first on line {rows[name][0]})." if name else
                            "the recording cell is empty.", path=path, line=number, fix=TABLE_FIX)
        try:
            metadata = PatientMetadata.model_validate(
                {k: v for k, v in values.items() if v and v.upper() != "NA"}, strict=False)
        except ValidationError as exc:
            raise DataError(f"{_field_problem(exc)}.", path=path, line=number, fix=TABLE_FIX) from None
        rows[name] = (number, metadata)
    return PatientTable(path, rows)


# ---------------------------------------------------------------- the ICBHI side files


def _side_files(recording: Path) -> dict[str, Path]:
    """The demographics and location files nearest the recording: each from its folder, else its parent."""
    folders = [recording.parent, *recording.parent.parents][:SIDE_FILE_FOLDERS]
    found = {}
    for name in (DEMOGRAPHICS_FILE, METADATA_FILE):
        path = next((folder / name for folder in folders if (folder / name).is_file()), None)
        if path is not None:
            found[name] = path
    return found


@lru_cache(maxsize=16)
def _patients(files: tuple[tuple[str, str, int, int], ...]) -> tuple[dict[str, Patient], tuple[Problem, ...]]:
    """The side files' patients, read once per version of the files (name, path, size, modification time)."""
    patients, problems = read_patients(Path(files[0][1]).parent, {name: Path(path) for name, path, *_ in files})
    return patients, tuple(problems)


def side_file_facts(recording: str | Path) -> tuple[PatientFacts | None, list[Problem]]:
    """What the ICBHI side files near the recording say of its patient (None when there are none, the name is not
    ICBHI's or the patient is not listed), with the problems of those files."""
    recording = Path(recording)
    files = _side_files(recording)
    parsed = parse_recording_name(recording.stem)
    if not files or parsed is None:
        return None, []
    versions = tuple((name, str(path), (st := os.stat(path)).st_size, st.st_mtime_ns)
                     for name, path in sorted(files.items()))
    patients, problems = _patients(versions)
    patient = patients.get(parsed.patient)
    if patient is None:
        return None, list(problems)
    folder = files.get(DEMOGRAPHICS_FILE, files.get(METADATA_FILE)).parent
    return PatientFacts(patient, f"the ICBHI side files in {folder}", metadata=PatientMetadata.of_patient(patient)), \
        list(problems)


# ---------------------------------------------------------------- every source, in order


def patient_facts(recording: str | Path, table: PatientTable | None = None) -> tuple[PatientFacts | None,
                                                                                     list[Problem]]:
    """What is known of the recording's patient, from the first source that knows it (the table, the sidecar,
    the side files), with the problems met on the way; None when nothing is known. A sidecar that is not valid
    raises PatientMetadataError: the user wrote it, and a prediction must not quietly ignore it."""
    recording = Path(recording)
    if table is not None and (facts := table.facts(recording)) is not None:
        return facts, []
    sidecar = sidecar_path(recording)
    if sidecar.exists() or sidecar.is_symlink():
        return _stated(read_sidecar(sidecar), _recording_pid(recording), sidecar.name), []
    return side_file_facts(recording)
