"""The dataset index: recordings, cycles, split and patients of an ICBHI (or ICBHI-style) folder.

Works from annotations alone (statistics) and with audio (training). Nothing is dropped silently:
every skipped line, unmatched name and unreadable file becomes a Problem in `warnings`.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from lungkd.core.data.annotations import (annotations_elsewhere, clip_cycles_to_duration, pick_annotation,
                                          read_annotation_file)
from lungkd.core.data.audio import AUDIO_EXTENSIONS, distinct_recordings, probe_audio
from lungkd.core.storage import json_sha256, walk_files
from lungkd.core.errors import AudioError, DataError, Problem
from lungkd.core.labels import CLASS_NAMES
from lungkd.core.data.metadata import (METADATA_FILE, NAME_DIFFERENCES_FILE, SIDE_FILES, SPLIT_FILE, NameMatch, match_split_names, name_problems,
                       parse_recording_name, read_name_differences, read_patients, read_split_file)
from lungkd.core.data.records import Cycle, Patient, Recording

SPLITS = ("train", "test")
# Audio containers people have that libsndfile (and so LungKD) does not read.
UNSUPPORTED_AUDIO = (".mp3", ".m4a", ".aac", ".wma", ".opus", ".webm", ".amr", ".mp4")


@dataclass
class DatasetIndex:
    root: Path
    recordings: list[Recording]  # sorted by name: the dataset order every architecture shares
    patients: dict[str, Patient] = field(default_factory=dict)
    name_matches: list[NameMatch] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    has_split_file: bool = False

    def recording(self, name: str) -> Recording:
        for rec in self.recordings:
            if rec.name == name:
                return rec
        raise KeyError(name)

    def cycles(self, split: str | None = None, *, need_audio: bool = False) -> list[Cycle]:
        """Cycles in dataset order: recordings by name, cycles in annotation order."""
        return [c for rec in self.recordings
                if (split is None or rec.split == split) and (rec.usable_audio or not need_audio)
                for c in rec.cycles]

    def apply_split(self, assignment: dict[str, str]) -> None:
        """Set every recording's split from `name -> train|test|val`; recordings not named get None."""
        for rec in self.recordings:
            rec.split = assignment.get(rec.name)

    def fingerprint(self) -> str:
        """Hash of names, cycles and split: what teacher logits and cached results are tied to."""
        return json_sha256([[rec.name, rec.split, [(c.start, c.end, c.label) for c in rec.cycles]]
                            for rec in self.recordings], 16)

    def stats(self) -> dict:
        cycles: dict[str, dict[str, int]] = {}
        for split in (*SPLITS, None):
            counts = Counter(c.label for c in self.cycles(split))
            cycles["all" if split is None else split] = {name: counts[i] for i, name in enumerate(CLASS_NAMES)}
        extra = sorted({r.split for r in self.recordings if r.split not in (*SPLITS, None)})
        for split in extra:
            counts = Counter(c.label for c in self.cycles(split))
            cycles[split] = {name: counts[i] for i, name in enumerate(CLASS_NAMES)}
        return {
            "root": str(self.root),
            "recordings": len(self.recordings),
            "recordings_with_audio": sum(r.usable_audio for r in self.recordings),
            "unannotated": [r.name for r in self.recordings if not r.annotated],
            "patients": len({r.patient for r in self.recordings}),
            "recordings_per_split": dict(Counter(r.split or "none" for r in self.recordings)),
            "cycles": cycles,
            # what training can use: cycles whose recording has readable audio, per split
            "cycles_with_audio": {split: len(self.cycles(None if split == "all" else split, need_audio=True))
                                  for split in cycles},
            "devices": dict(sorted(Counter(r.device or "unknown" for r in self.recordings).items())),
            "sample_rates": {str(k): v for k, v in sorted(Counter(r.sample_rate for r in self.recordings
                                                                   if r.sample_rate).items())},
            "split_file": self.has_split_file,
            "name_matches": [m.to_dict() for m in self.name_matches],
            "warnings": [str(w) for w in self.warnings],
        }


def _walk(root: Path, problems: list[Problem]) -> list[Path]:
    """Every file under root; a folder that cannot be listed, or lies too deep, is a warning, not a silent gap."""
    def skipped(folder: Path, reason: str) -> None:
        fix = "give your user read permission (e.g. `chmod u+rx FOLDER`)." if "cannot be read" in reason else \
            "move the recordings up, or give the deep folder itself."
        problems.append(Problem(str(folder), f"{reason}; the recordings in it are left out.", fix))

    return list(walk_files(root, skipped))


def _find_files(root: Path, problems: list[Problem]
                ) -> tuple[dict[str, Path], dict[str, list[Path]], dict[str, Path], list[Path]]:
    """Audio by stem (one file per name: `distinct_recordings`), annotation candidates by stem, side files by
    name, unsupported audio files."""
    audio: list[Path] = []
    texts: dict[str, list[Path]] = {}
    side: dict[str, Path] = {}
    unsupported: list[Path] = []
    # Shallowest first, so the top-level copy of a side file wins.
    for path in sorted(_walk(root, problems), key=lambda p: (len(p.parts), str(p))):
        suffix = path.suffix.lower()
        if path.name.startswith("."):
            continue
        if not path.is_file():  # a pipe or a device is never opened: it could wait, or never end
            if suffix in (".txt", *AUDIO_EXTENSIONS):
                problems.append(Problem(str(path), "not a regular file (a pipe, a device, a socket or a broken "
                                        "link); left out.", "replace it with the file itself."))
            continue
        if path.name in SIDE_FILES:
            side.setdefault(path.name, path)
        elif suffix in AUDIO_EXTENSIONS:
            audio.append(path)
        elif suffix == ".txt":
            texts.setdefault(path.stem, []).append(path)
        elif suffix in UNSUPPORTED_AUDIO:
            unsupported.append(path)
    kept, duplicates = distinct_recordings(audio)
    problems.extend(duplicates)
    return {path.stem: path for path in kept}, texts, side, unsupported


def _pick_annotation(candidates: list[Path], audio: Path | None, problems: list[Problem]) -> Path:
    """The annotation beside the audio (the ICBHI zip) when there is one there, else the shallowest; of several
    in that folder (`X.txt`, `X.TXT`), the one every command picks (`pick_annotation`)."""
    beside = [p for p in candidates if audio is not None and p.parent == audio.parent]
    folder = (beside or candidates)[0].parent
    chosen, others = pick_annotation([p for p in candidates if p.parent == folder])
    problems.extend(others)
    problems.extend(annotations_elsewhere(chosen, [p for p in candidates if p.parent != folder], chosen.stem))
    return chosen


def _build_recording(stem: str, audio: Path | None, annotation: Path | None, probe: bool,
                     problems: list[Problem]) -> Recording:
    parsed = parse_recording_name(stem)
    where = audio or annotation
    rec = Recording(name=stem, patient=parsed.patient if parsed else stem, audio_path=audio, annotation_path=annotation)
    if parsed:
        rec.recording_index, rec.location, rec.mode, rec.device = (parsed.recording_index, parsed.location,
                                                                    parsed.mode, parsed.device)
        problems.extend(name_problems(stem, parsed, where))
    cycles: list[Cycle] = []
    if annotation is not None:
        try:
            cycles, line_problems = read_annotation_file(annotation, stem)
            problems.extend(line_problems)
        except DataError as exc:
            problems.append(exc.problem)
    if audio is not None and probe:
        try:
            info = probe_audio(audio)
            rec.sample_rate, rec.duration = info.sample_rate, info.duration
            if info.truncated:
                problems.append(info.truncation_problem(audio))
        except AudioError as exc:
            rec.audio_problem = exc.problem.message
            problems.append(exc.problem)
    elif annotation is not None and audio is None and probe:
        rec.audio_problem = "no audio file"
    if rec.duration is not None:
        cycles, clip_problems = clip_cycles_to_duration(cycles, rec.duration, annotation)
        problems.extend(clip_problems)
    rec.cycles = tuple(cycles)
    return rec


def load_dataset(root: str | Path, *, probe_audio_files: bool = True) -> DatasetIndex:
    """Index a folder of recordings: the ICBHI zip (flat or with audio in a subfolder) or any folder of
    wav/flac/ogg files with ICBHI-style `.txt` annotations beside them.

    `probe_audio_files` reads each audio header (sample rate, duration) and clips cycles to the audio.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError("not a folder.", path=root, fix="give the folder that holds the recordings and annotations.")
    warnings: list[Problem] = []
    audio, texts, side, unsupported = _find_files(root, warnings)
    warnings += [Problem(str(p), f"unsupported audio format '{p.suffix}'; file skipped.",
                         "convert it to wav, flac or ogg (e.g. `ffmpeg -i in.mp3 out.wav`).") for p in unsupported]
    annotation_stems = {s for s in texts if s in audio or parse_recording_name(s)}
    if not audio and not annotation_stems:
        raise DataError("no recordings (wav, flac, ogg) or ICBHI annotation files found.", path=root,
                        fix="choose the folder of the unpacked ICBHI download or a folder of recordings.")
    recordings = []
    for stem in sorted(set(audio) | annotation_stems):
        annotation = _pick_annotation(texts[stem], audio.get(stem), warnings) if stem in annotation_stems else None
        recordings.append(_build_recording(stem, audio.get(stem), annotation, probe_audio_files, warnings))

    warnings.extend(_missing_audio_problems(recordings))
    patients, patient_problems = read_patients(root, side)
    warnings.extend(patient_problems)
    index = DatasetIndex(root, recordings, patients, warnings=warnings, has_split_file=SPLIT_FILE in side)
    if index.has_split_file:
        try:
            _assign_official_split(index, side)
        except DataError as exc:  # an unreadable split file: as if there were none, and said so
            index.has_split_file = False
            warnings.append(exc.problem)
        if METADATA_FILE not in side:
            warnings.append(Problem(str(root / METADATA_FILE), (
                "missing: BTS prompts take each patient's chest location from this file (location_source = "
                '"patient", the BTS default); without it they take the location from each file name instead '
                "(on ICBHI, 698 of 920 prompts change)."),
                'copy metadata_with_location.txt (from the BTS code) into the dataset folder, or set '
                'location_source = "filename" in the recipe\'s [data] to use file names on purpose.'))
    return index


def _shown(names: list[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def _missing_audio_problems(recordings: list[Recording]) -> list[Problem]:
    """In a folder with audio, an annotation without its recording is worth a word (one, not hundreds)."""
    if not any(r.audio_path for r in recordings):
        return []  # annotations alone: statistics mode
    missing = [r for r in recordings if r.audio_path is None]
    if not missing:
        return []
    where = str(missing[0].annotation_path) if len(missing) == 1 else None
    return [Problem(where, f"{len(missing)} annotated recording(s) have no audio file "
                    f"({_shown([r.name for r in missing])}); they count in statistics but cannot be trained on.",
                    "put the .wav next to its .txt, or remove the annotation.")]


def _assign_official_split(index: DatasetIndex, side: dict[str, Path]) -> None:
    split_path = side[SPLIT_FILE]
    split, problems = read_split_file(split_path)
    index.warnings.extend(problems)
    old_names = set()
    if NAME_DIFFERENCES_FILE in side:
        try:
            old_names = read_name_differences(side[NAME_DIFFERENCES_FILE])
        except DataError as exc:
            index.warnings.append(exc.problem)
    names = [r.name for r in index.recordings]
    index.name_matches = match_split_names(names, split, old_names)
    split_name = {m.file_name: m.split_name for m in index.name_matches}
    for rec in index.recordings:
        entry = split_name.get(rec.name, rec.name)
        rec.split = split.get(entry)
        if entry != rec.name:
            rec.split_name = entry
        elif rec.split is None:
            index.warnings.append(Problem(str(split_path), f"the recording '{rec.name}' is not in the split file; "
                                          "its cycles are in neither train nor test.",
                                          f"add a line `{rec.name}<TAB>train` (or test) to {SPLIT_FILE}."))
    claimed = set(names) | set(split_name.values())
    orphans = sorted(name for name in split if name not in claimed)
    if orphans:
        index.warnings.append(Problem(str(split_path), f"{len(orphans)} split entries have no recording or "
                                      f"annotation in the folder ({_shown(orphans)}).",
                                      "add the missing files, or ignore this if you work on a subset."))
