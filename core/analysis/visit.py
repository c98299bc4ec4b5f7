"""A report of one patient visit, built from the analyses of its recordings: what `lungkd visit-report` and the
Studio's File > Report of this visit… write (visit_pages.py renders it as HTML; the Studio and the command
turn that into PDF with Qt's own writer, app/report_pdf.py).

A visit is a patient and a recording session, read from ICBHI-style names (`101_1b1_Al_sc_Meditron`: patient
101, session 1b1, left anterior chest); a recording with another name is a visit of its own. The report holds,
for a filing clinician: the intended use and that it is not a diagnosis; the model (name, card summary,
training data, calibration, version, its warnings); per recording its quality, breathing, chest location,
crackle and wheeze cycles, spectrogram snippets of its abnormal cycles with their calibrated probabilities and
marks, and what a person changed in its annotation (core/data/edit_history.py); the LungKD version and the
sha256 of every file the report rests on.

A recording's entry is made while its decoded samples are at hand (`recording_entry`), so a visit of many
recordings holds one recording's samples at a time; snippets are small dB images (at most MAX_SNIPPETS per
recording, the likeliest abnormal cycles first).
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from lungkd.core.about import lungkd_version
from lungkd.core.analysis.display import display_spectrogram, relative_to_loud_parts
from lungkd.core.analysis.batch import Batch, Failure, expand_recordings, for_each_recording
from lungkd.core.analysis.predict import RecordingAnalysis, analyse_samples
from lungkd.core.data.annotation_io import annotation_path_for
from lungkd.core.data.audio import DecodedAudio, load_audio
from lungkd.core.data.edit_history import EditRecord, history_path_for, read_edit_history
from lungkd.core.data.metadata import parse_recording_name
from lungkd.core.data.prompts import LOCATION_WORDS
from lungkd.core.errors import LungKDError
from lungkd.core.labels import CLASS_NAMES
from lungkd.core.models.card import ModelCard, model_notes
from lungkd.core.models.inventory import card_name

INTENDED_USE = (
    "LungKD marks the breathing cycles of lung-sound recordings as normal, crackle, wheeze or both, with how sure "
    "it is, to help a trained person listen to and review recordings. It is research software, not a medical "
    "device: nothing in this report is a diagnosis, and no clinical decision may rest on it. Every mark is to be "
    "checked by listening to the recording.")
MAX_SNIPPETS = 6  # per recording: the likeliest abnormal cycles
SNIPPET_MARGIN_S = 0.25  # of the recording shown before and after the cycle
SNIPPET_TOP_HZ = 2000.0  # breath sounds, crackles and wheezes lie below
CRACKLE, WHEEZE, BOTH = (CLASS_NAMES.index(name) for name in ("crackle", "wheeze", "both"))


@dataclass(frozen=True)
class CycleSnippet:
    start: float
    end: float
    predicted: str
    probability: float  # of the predicted class, calibrated where the model is
    truth: str | None  # the annotated class
    marks: tuple[str, ...]  # why to be careful with it: poor quality, unlike the training data, annotated otherwise
    db: np.ndarray  # (frames, bins) relative to the snippet's loud parts, 0 Hz to top_hz
    shown_from: float  # s, the first frame's time
    seconds_per_frame: float
    top_hz: float


@dataclass(frozen=True)
class RecordingEntry:
    name: str
    path: str
    sha256: str
    annotation: str | None  # the annotation's file name, when there is one
    annotation_sha256: str | None
    duration: float
    sample_rate: int
    device: str | None
    location: str | None  # ICBHI code (Al, Tc, ...), None when the name does not say
    cycle_source: str
    cycles: int
    crackle_cycles: int  # predicted crackle or both
    wheeze_cycles: int  # predicted wheeze or both
    class_counts: dict[str, int]
    quality: str | None
    quality_reasons: tuple[str, ...]
    poor_cycles: int
    breathing: str  # rate and I:E ratio with their confidence, in words
    unlike_training: bool | None
    warnings: tuple[str, ...]
    snippets: tuple[CycleSnippet, ...]
    abnormal_cycles: int  # snippets shows at most MAX_SNIPPETS of them
    edits: tuple[EditRecord, ...]
    history_problems: tuple[str, ...]

    @property
    def location_words(self) -> str:
        return LOCATION_WORDS.get(self.location or "", "location not given")


@dataclass(frozen=True)
class ModelSummary:
    name: str
    folder: str
    architecture: str
    description: str
    trained_on: str
    training_labels: str
    score: str  # its test Score and where it was measured
    calibration: str
    versions: str
    warnings: tuple[str, ...]
    checksums: dict[str, str]


@dataclass(frozen=True)
class VisitReport:
    patient: str
    session: str
    created: str  # UTC, ISO 8601
    lungkd_version: str
    model: ModelSummary
    recordings: tuple[RecordingEntry, ...]
    intended_use: str = INTENDED_USE

    @property
    def title(self) -> str:
        return f"patient {self.patient}, session {self.session}" if self.session else self.patient

    def locations(self) -> dict[str, tuple[int, int]]:
        """Per chest location recorded: its crackle and wheeze cycles over the visit."""
        found: dict[str, tuple[int, int]] = defaultdict(lambda: (0, 0))
        for r in self.recordings:
            if r.location:
                crackles, wheezes = found[r.location]
                found[r.location] = (crackles + r.crackle_cycles, wheezes + r.wheeze_cycles)
        return dict(found)


def visit_of(name: str) -> tuple[str, str]:
    """(patient, session) of an ICBHI-style recording name; (the name, "") for any other name."""
    parsed = parse_recording_name(name)
    return (parsed.patient, parsed.recording_index) if parsed else (name, "")


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- a recording


def _marks(cycle, predicted: int) -> tuple[str, ...]:
    marks = []
    if cycle.poor:  # its reasons are the recording's, listed once above its snippets
        marks.append("poor recording quality")
    if cycle.unlike_training:
        marks.append("outside the model's training data")
    if cycle.truth is not None and cycle.truth != predicted:
        marks.append(f"annotated {CLASS_NAMES[cycle.truth]}")
    return tuple(marks)


def _snippet(decoded: DecodedAudio, cycle) -> CycleSnippet:
    sr = decoded.sample_rate
    first = max(0.0, cycle.start - SNIPPET_MARGIN_S)
    piece = decoded.samples[int(first * sr):int(min(cycle.end + SNIPPET_MARGIN_S, len(decoded.samples) / sr) * sr)]
    db, seconds_per_frame, hz_per_bin = display_spectrogram(piece, sr, max_frames=600)
    top = min(SNIPPET_TOP_HZ, sr / 2)
    db = relative_to_loud_parts(db, hz_per_bin)[:, :int(top / hz_per_bin) + 1]
    predicted = cycle.predicted
    return CycleSnippet(cycle.start, cycle.end, CLASS_NAMES[predicted], float(cycle.probabilities[predicted]),
                        None if cycle.truth is None else CLASS_NAMES[cycle.truth], _marks(cycle, predicted),
                        db.astype(np.float32), first, seconds_per_frame, db.shape[1] * hz_per_bin)


def _history(audio: Path) -> tuple[tuple[EditRecord, ...], tuple[str, ...]]:
    try:
        records, problems = read_edit_history(annotation_path_for(audio))
    except LungKDError as exc:  # a history that cannot be read leaves the rest of the report standing
        return (), (f"{history_path_for(annotation_path_for(audio)).name}: {exc}",)
    return tuple(records), tuple(str(p) for p in problems)


def recording_entry(analysis: RecordingAnalysis, decoded: DecodedAudio) -> RecordingEntry:
    """What the report says of one analysed recording, with snippets cut from its decoded samples."""
    path = Path(analysis.path)
    counts = analysis.class_counts()
    abnormal = sorted((c for c in analysis.cycles if c.predicted != 0), key=lambda c: -c.confidence)
    annotation = annotation_path_for(path)
    parsed = parse_recording_name(path.stem)
    edits, history_problems = _history(path)
    return RecordingEntry(
        analysis.name, str(path), sha256_of(path), annotation.name if annotation.exists() else None,
        sha256_of(annotation) if annotation.exists() else None, analysis.duration, analysis.sample_rate,
        analysis.device, parsed.location if parsed else None, analysis.cycle_source, len(analysis.cycles),
        counts[CLASS_NAMES[CRACKLE]] + counts[CLASS_NAMES[BOTH]], counts[CLASS_NAMES[WHEEZE]] + counts[CLASS_NAMES[BOTH]],
        counts, analysis.quality, tuple(analysis.quality_reasons), sum(c.poor for c in analysis.cycles),
        analysis.breathing_words, analysis.unlike_training, tuple(analysis.warnings),
        tuple(sorted((_snippet(decoded, c) for c in abnormal[:MAX_SNIPPETS]), key=lambda s: s.start)), len(abnormal),
        edits, history_problems)


# ---------------------------------------------------------------- the model, and the visits


def model_summary(card: ModelCard, folder: Path) -> ModelSummary:
    notes = model_notes(card)
    test = card.test
    score = "not scored" if test is None or test.score is None else (
        f"Score {test.score:.1f} (specificity {test.sp:.1f}, sensitivity {test.se:.1f})"
        + (f" on the {card.test_data.split} split of {card.test_data.dataset}, {card.test_data.cycles} cycles"
           if card.test_data else ""))
    calibration = card.calibration
    if card.temperature is None:
        calibrated = "uncalibrated: its probabilities are the plain softmax"
    else:
        calibrated = f"calibrated by temperature {card.temperature:.2f}"
        if calibration and calibration.fitted_on:
            calibrated += f", fitted on {calibration.fitted_on.cycles} held-out cycles"
        if calibration and calibration.ece_before is not None and calibration.ece_after is not None:
            calibrated += f" (expected calibration error {calibration.ece_before:.3f} before, {calibration.ece_after:.3f} after)"
    return ModelSummary(
        card_name(card) or folder.name, str(folder), f"{card.architecture} ({card.size})", card.description,
        notes.trained_on, card.training_labels or "hard labels", score, calibrated,
        ", ".join(f"{k} {v}" for k, v in sorted(card.versions.items())) or "not recorded",
        tuple(notes.warnings()), dict(card.checksums))


def visit_reports(entries: list[RecordingEntry], model: ModelSummary) -> list[VisitReport]:
    """One report per visit (patient and session) of the entries, in the order of their first recording."""
    visits: dict[tuple[str, str], list[RecordingEntry]] = {}
    for entry in entries:
        visits.setdefault(visit_of(entry.name), []).append(entry)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return [VisitReport(patient, session, created, lungkd_version(), model,
                        tuple(sorted(group, key=lambda e: e.name)))
            for (patient, session), group in visits.items()]


def visit_entries(paths: list[Path], usable, *, cancel=None, on_progress=None) -> Batch[RecordingEntry]:
    """Every recording the paths hold (files and folders, as `lungkd predict` takes them), analysed and made a
    report entry one at a time; the files that failed with their reasons."""
    recordings, left_out = expand_recordings(paths)
    batch: Batch[RecordingEntry] = Batch(failures=[f for f in left_out if not f.skipped],
                                         left_out=[f for f in left_out if f.skipped])

    def entry(path: Path, token) -> RecordingEntry:
        decoded = load_audio(path)
        return recording_entry(analyse_samples(path, decoded, usable, cancel=token), decoded)

    for outcome in for_each_recording(recordings, entry, cancel=cancel, on_progress=on_progress):
        (batch.failures if isinstance(outcome, Failure) else batch.results).append(outcome)
    return batch


def report_file_names(target: Path, reports: list[VisitReport]) -> list[Path]:
    """`target` for one visit; for several, one file each beside it: REPORT-101_1b1.pdf."""
    if len(reports) == 1:
        return [target]
    return [target.with_name(f"{target.stem}-{r.patient}{'_' + r.session if r.session else ''}{target.suffix}")
            for r in reports]
