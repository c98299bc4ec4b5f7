"""Dataset folders that are not in the ICBHI layout, chosen by what they hold: SPRSound (a JSON file per
recording), HF_Lung (`NAME_label.txt` beside `NAME.wav`), a label table (CSV/TSV naming file, start, end,
label) or Audacity label tracks (`NAME.txt`, `start<TAB>end<TAB>label`). Each format's reader turns its
labels into cycles through a label map (core.data.label_maps); here they become a DatasetIndex with the same
discipline as the ICBHI reader (core.data.dataset): every skipped line and unpaired file is a warning, and
what is left out on purpose is counted with its reason.

The official split is the folders: a file under a folder named train (or training) is in train, one under a
folder named test (inter_test_json, test2022_wav, ...) in test; a table's `split` column says it too.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from lungkd.core.data.annotations import NO_USABLE_CYCLE, clip_cycles_to_duration
from lungkd.core.data.audio import AUDIO_EXTENSIONS, distinct_recordings, probe_audio
from lungkd.core.data.hf_lung import LABEL_SUFFIX, parse_hf_lung_name, read_hf_lung_labels
from lungkd.core.data.hf_lung import name_problem as hf_name_problem
from lungkd.core.data.index import DatasetIndex, missing_audio_problems
from lungkd.core.data.label_maps import LabelMap, LabelTarget, Tally
from lungkd.core.data.label_tables import (TABLE_EXTENSIONS, is_audacity_track, is_label_table, read_audacity_track,
                                           read_label_table)
from lungkd.core.data.metadata import SIDE_FILES, SPLIT_FILE, parse_recording_name
from lungkd.core.data.records import Cycle, Patient, Recording
from lungkd.core.data.sprsound import DEVICE as SPRSOUND_DEVICE
from lungkd.core.data.sprsound import parse_sprsound_name, patient_facts, read_sprsound_annotation
from lungkd.core.data.sprsound import name_problem as spr_name_problem
from lungkd.core.errors import AudioError, DataError, Problem

DatasetFormat = Literal["icbhi", "sprsound", "hf_lung", "table", "audacity"]
FORMAT_NAMES = {"icbhi": "ICBHI 2017 layout", "sprsound": "SPRSound", "hf_lung": "HF_Lung",
                "table": "label table", "audacity": "Audacity label tracks"}
# Audio containers people have that libsndfile (and so LungKD) does not read.
UNSUPPORTED_AUDIO = (".mp3", ".m4a", ".aac", ".wma", ".opus", ".webm", ".amr", ".mp4")
_TRAIN_WORDS, _TEST_WORDS = {"train", "training"}, {"test", "testing"}
UNLABELLED = ("seconds", "of audio in no cycle (unlabelled time, not taken as normal)")


def folder_split(path: Path, root: Path) -> str | None:
    """train or test by the nearest folder between `root` and `path` whose name says so; None otherwise."""
    for folder in reversed(path.relative_to(root).parts[:-1]):
        words = set(re.split(r"[^a-z]+", folder.casefold()))
        if words & _TEST_WORDS:
            return "test"
        if words & _TRAIN_WORDS:
            return "train"
    return None


def detect_format(paths: list[Path], audio_stems: set[str]) -> DatasetFormat:
    """The format of a folder from its files: ICBHI's split file, SPRSound's JSON, HF_Lung's label files, a label
    table, Audacity tracks beside the audio; otherwise the ICBHI style (`.txt` with four columns)."""
    names = {p.name for p in paths}
    if SPLIT_FILE in names:
        return "icbhi"
    if any(p.suffix.lower() == ".json" and (p.stem in audio_stems or parse_sprsound_name(p.stem)) for p in paths):
        return "sprsound"
    if any(p.suffix.lower() == ".txt" and p.stem.endswith(LABEL_SUFFIX) and
           (p.stem.removesuffix(LABEL_SUFFIX) in audio_stems or parse_hf_lung_name(p.stem.removesuffix(LABEL_SUFFIX)))
           for p in paths):
        return "hf_lung"
    if any(is_label_table(p) for p in paths):
        return "table"
    beside = [p for p in paths if p.suffix.lower() == ".txt" and p.stem in audio_stems and p.name not in SIDE_FILES]
    if beside and is_audacity_track(beside[0]):
        return "audacity"
    return "icbhi"


def audio_by_stem(paths: list[Path], problems: list[Problem]) -> dict[str, Path]:
    """The audio files, one per recording name (`distinct_recordings`); unsupported containers are warned of."""
    audio = [p for p in paths if p.suffix.lower() in AUDIO_EXTENSIONS]
    problems += [Problem(str(p), f"unsupported audio format '{p.suffix}'; file skipped.",
                         "convert it to wav, flac or ogg (e.g. `ffmpeg -i in.mp3 out.wav`).")
                 for p in paths if p.suffix.lower() in UNSUPPORTED_AUDIO]
    kept, duplicates = distinct_recordings(audio)
    problems.extend(duplicates)
    return {path.stem: path for path in kept}


@dataclass
class Found:
    """A recording as its format's reader found it."""

    annotation: Path
    cycles: list[Cycle]
    excluded: bool = False  # left out whole (SPRSound's Poor Quality): its time is not "unlabelled"
    patient: str | None = None
    split: str | None = None  # given by the annotation itself (a table's split column)
    location: str | None = None
    device: str | None = None
    facts: Patient | None = None  # what the name says of the patient (age, sex)


@dataclass
class _Reading:
    root: Path
    audio: dict[str, Path]
    label_map: LabelMap
    tally: Tally = field(default_factory=Tally)
    problems: list[Problem] = field(default_factory=list)
    found: dict[str, Found] = field(default_factory=dict)

    def add(self, stem: str, found: Found) -> None:
        if stem in self.found:
            self.problems.append(Problem(str(found.annotation), f"a second annotation of the recording '{stem}'; "
                                         f"{self.found[stem].annotation} is used and this one is left out.",
                                         "delete or rename the one that is wrong."))
            return
        if not found.cycles and not found.excluded:
            self.problems.append(Problem(str(found.annotation), NO_USABLE_CYCLE,
                                         "lines that could not be read are named in other warnings; labels the map "
                                         "leaves out are counted in what was left out."))
        self.found[stem] = found


def _read_sprsound(reading: _Reading, paths: list[Path]) -> None:
    for path in (p for p in paths if p.suffix.lower() == ".json"):
        try:
            cycles, problems, excluded = read_sprsound_annotation(path, path.stem, reading.label_map, reading.tally)
        except DataError as exc:
            reading.problems.append(exc.problem)
            continue
        reading.problems.extend(problems)
        name = parse_sprsound_name(path.stem)
        if name is None:
            reading.problems.append(spr_name_problem(path.stem, path))
        reading.add(path.stem, Found(path, cycles, excluded, patient=name and name.patient,
                                     location=name and name.location, device=SPRSOUND_DEVICE,
                                     facts=name and patient_facts(name)))


def _read_hf_lung(reading: _Reading, paths: list[Path]) -> None:
    for path in (p for p in paths if p.suffix.lower() == ".txt" and p.stem.endswith(LABEL_SUFFIX)):
        stem = path.stem.removesuffix(LABEL_SUFFIX)
        try:
            cycles, problems = read_hf_lung_labels(path, stem, reading.label_map, reading.tally)
        except DataError as exc:
            reading.problems.append(exc.problem)
            continue
        reading.problems.extend(problems)
        name = parse_hf_lung_name(stem)
        if name is None:
            reading.problems.append(hf_name_problem(stem, path))
        reading.add(stem, Found(path, cycles, patient=name and name.patient, location=name and name.location,
                                device=name and name.device))


def _icbhi_style(stem: str) -> dict:
    """Patient, chest location and device from an ICBHI-style name, where a table or track uses one."""
    name = parse_recording_name(stem)
    return {"patient": name.patient, "location": name.location, "device": name.device} if name else {}


def _read_tables(reading: _Reading, paths: list[Path]) -> None:
    for path in (p for p in paths if p.suffix.lower() in TABLE_EXTENSIONS):  # one without the columns is named
        try:
            recordings, problems = read_label_table(path, reading.label_map, reading.tally)
        except DataError as exc:
            reading.problems.append(exc.problem)
            continue
        reading.problems.extend(problems)
        for entry in recordings:
            facts = _icbhi_style(entry.stem)
            reading.add(entry.stem, Found(path, entry.cycles, split=entry.split,
                                          **{**facts, "patient": entry.patient or facts.get("patient")}))


def _read_tracks(reading: _Reading, paths: list[Path]) -> None:
    for path in (p for p in paths if p.suffix.lower() == ".txt" and p.name not in SIDE_FILES):
        if path.stem not in reading.audio and not is_audacity_track(path):
            continue  # a text file that is neither beside a recording nor a label track: not ours to read
        try:
            cycles, problems = read_audacity_track(path, path.stem, reading.label_map, reading.tally)
        except DataError as exc:
            reading.problems.append(exc.problem)
            continue
        reading.problems.extend(problems)
        reading.add(path.stem, Found(path, cycles, **_icbhi_style(path.stem)))


READERS: dict[str, Callable[[_Reading, list[Path]], None]] = {
    "sprsound": _read_sprsound, "hf_lung": _read_hf_lung, "table": _read_tables, "audacity": _read_tracks}


def _unlabelled_seconds(cycles: tuple[Cycle, ...], duration: float) -> float:
    """The time of a recording that lies in none of its cycles."""
    covered, reach = 0.0, 0.0
    for start, end in sorted((max(0.0, c.start), min(duration, c.end)) for c in cycles):
        if end > reach:
            covered += end - max(start, reach)
            reach = end
    return max(0.0, duration - covered)


def _official_split(rec: Recording, root: Path) -> str | None:
    """From the annotation's folders first (SPRSound keeps its test audio in one folder and the annotations in
    inter- and intra-subject folders), then the audio's."""
    for path in (rec.annotation_path, rec.audio_path):
        if path is not None and (split := folder_split(path, root)):
            return split
    return None


def _recording(reading: _Reading, stem: str, probe: bool) -> Recording:
    found, audio = reading.found.get(stem), reading.audio.get(stem)
    rec = Recording(name=stem, patient=(found and found.patient) or stem, audio_path=audio,
                    annotation_path=found and found.annotation, location=found and found.location,
                    device=found and found.device)
    rec.split = (found and found.split) or _official_split(rec, reading.root)
    cycles = tuple(found.cycles) if found else ()
    if audio is not None and probe:
        try:
            info = probe_audio(audio)
            rec.sample_rate, rec.duration = info.sample_rate, info.duration
            if info.truncated:
                reading.problems.append(info.truncation_problem(audio))
        except AudioError as exc:
            rec.audio_problem = exc.problem.message
            reading.problems.append(exc.problem)
    elif found is not None and audio is None and probe:
        rec.audio_problem = "no audio file"
    if rec.duration is not None:
        cycles, clip_problems = clip_cycles_to_duration(cycles, rec.duration, rec.annotation_path)
        reading.problems.extend(clip_problems)
        if found is not None and not found.excluded:
            reading.tally.leave_out(*UNLABELLED, _unlabelled_seconds(cycles, rec.duration))
    rec.cycles = cycles
    return rec


def _patients(reading: _Reading) -> dict[str, Patient]:
    """What the names say of each patient; a patient whose names disagree on the sex is warned of (their age
    changes between visits, and the first is kept)."""
    patients: dict[str, Patient] = {}
    for stem, found in sorted(reading.found.items()):
        facts = found.facts
        if facts is None:
            continue
        known = patients.setdefault(facts.pid, facts)
        if known.sex != facts.sex:
            reading.problems.append(Problem(str(found.annotation), f"patient {facts.pid} is {facts.sex} here and "
                                            f"{known.sex} in an earlier recording; the first is used.",
                                            "correct the gender in the file name."))
    return patients


def load_labelled_folder(root: Path, fmt: DatasetFormat, paths: list[Path], problems: list[Problem], *,
                         label_map: dict[str, LabelTarget] | None = None, probe: bool = True) -> DatasetIndex:
    """The index of a SPRSound, HF_Lung, label-table or Audacity folder whose files are `paths`."""
    reading = _Reading(root, audio_by_stem(paths, problems), LabelMap.for_format(fmt, label_map), problems=problems)
    READERS[fmt](reading, paths)
    if not reading.audio and not reading.found:
        raise DataError(f"no recordings (wav, flac, ogg) or {FORMAT_NAMES[fmt]} annotations found.", path=root,
                        fix="choose the folder of the unpacked download, or a folder of recordings.")
    recordings = [_recording(reading, stem, probe) for stem in sorted(set(reading.audio) | set(reading.found))]
    reading.problems.extend(missing_audio_problems(recordings, "put the recording's audio file in the dataset "
                                                   "folder, or remove its annotation."))
    patients = _patients(reading)
    return DatasetIndex(root, recordings, patients, warnings=reading.problems, format=fmt,
                        split_from_folders=any(r.split for r in recordings),
                        label_map=dict(reading.label_map.entries), tally=reading.tally)
