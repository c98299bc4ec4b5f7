"""Reading a dataset folder (`load_dataset`): the ICBHI 2017 layout and ICBHI-style folders here, the other
formats (SPRSound, HF_Lung, label tables, Audacity label tracks) in core.data.labelled_folders, chosen by what
the folder holds. The index itself is core.data.index.DatasetIndex.
"""
from __future__ import annotations

from pathlib import Path

from lungkd.core.data.annotations import clip_cycles_to_duration, pick_annotation, read_annotation_file
from lungkd.core.data.audio import AUDIO_EXTENSIONS, probe_audio
from lungkd.core.data.index import ICBHI_FORMAT, DatasetIndex, missing_audio_problems, shown, walk_files
from lungkd.core.data.label_maps import LabelTarget
from lungkd.core.data.labelled_folders import DatasetFormat, audio_by_stem, detect_format, load_labelled_folder
from lungkd.core.errors import AudioError, DataError, Problem
from lungkd.core.data.metadata import (METADATA_FILE, NAME_DIFFERENCES_FILE, SIDE_FILES, SPLIT_FILE, match_split_names,
                                       name_problems, parse_recording_name, read_name_differences, read_patients,
                                       read_split_file)
from lungkd.core.data.records import Cycle, Recording

__all__ = ["DatasetIndex", "load_dataset"]


def _annotation_files(paths: list[Path]) -> tuple[dict[str, list[Path]], dict[str, Path]]:
    """Annotation candidates by stem and side files by name (the first, shallowest, of each)."""
    texts: dict[str, list[Path]] = {}
    side: dict[str, Path] = {}
    for path in paths:
        if path.name in SIDE_FILES:
            side.setdefault(path.name, path)
        elif path.suffix.lower() == ".txt":
            texts.setdefault(path.stem, []).append(path)
    return texts, side


def _pick_annotation(candidates: list[Path], audio: Path | None, problems: list[Problem]) -> Path:
    """The annotation beside the audio (the ICBHI zip) when there is one there, else the shallowest; of several
    in that folder (`X.txt`, `X.TXT`), the one every command picks (`pick_annotation`)."""
    beside = [p for p in candidates if audio is not None and p.parent == audio.parent]
    folder = (beside or candidates)[0].parent
    chosen, others = pick_annotation([p for p in candidates if p.parent == folder])
    problems.extend(others)
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


def load_dataset(root: str | Path, *, probe_audio_files: bool = True, dataset_format: DatasetFormat | None = None,
                 label_map: dict[str, LabelTarget] | None = None) -> DatasetIndex:
    """Index a folder of recordings: the ICBHI zip (flat or with audio in a subfolder), any folder of
    wav/flac/ogg files with ICBHI-style `.txt` annotations beside them, or a folder of another format
    (core.data.labelled_folders), by `dataset_format` or by what the folder holds. `label_map` changes the
    format's default label map (core.data.label_maps).

    `probe_audio_files` reads each audio header (sample rate, duration) and clips cycles to the audio.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError("not a folder.", path=root, fix="give the folder that holds the recordings and annotations.")
    warnings: list[Problem] = []
    # Shallowest first, so the top-level copy of a side file wins.
    paths = [p for p in sorted(walk_files(root, warnings), key=lambda p: (len(p.parts), str(p)))
             if not p.name.startswith(".") and p.is_file()]
    fmt = dataset_format or detect_format(paths, {p.stem for p in paths if p.suffix.lower() in AUDIO_EXTENSIONS})
    if fmt != ICBHI_FORMAT:
        return load_labelled_folder(root, fmt, paths, warnings, label_map=label_map, probe=probe_audio_files)
    return _load_icbhi_folder(root, paths, warnings, probe_audio_files)


def _load_icbhi_folder(root: Path, paths: list[Path], warnings: list[Problem], probe_audio_files: bool) -> DatasetIndex:
    audio = audio_by_stem(paths, warnings)
    texts, side = _annotation_files(paths)
    annotation_stems = {s for s in texts if s in audio or parse_recording_name(s)}
    if not audio and not annotation_stems:
        raise DataError("no recordings (wav, flac, ogg) or ICBHI annotation files found.", path=root,
                        fix="choose the folder of the unpacked ICBHI download or a folder of recordings.")
    recordings = []
    for stem in sorted(set(audio) | annotation_stems):
        annotation = _pick_annotation(texts[stem], audio.get(stem), warnings) if stem in annotation_stems else None
        recordings.append(_build_recording(stem, audio.get(stem), annotation, probe_audio_files, warnings))

    warnings.extend(missing_audio_problems(recordings))
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
                                      f"annotation in the folder ({shown(orphans)}).",
                                      "add the missing files, or ignore this if you work on a subset."))
