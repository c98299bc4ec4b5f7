"""Per-cycle predictions on a user's recording: the engine behind `lungkd predict` and LungKD Studio.

Cycles come from the annotation file beside the recording when there is one (ground truth is then
known), else from the automatic segmentation of the breathing (core/analysis/segmentation.py), which falls
back to fixed windows when it finds no breathing it can trust; or from the caller (the cycles of an
annotation being edited in the Studio, before it is saved). core/analysis/groundwork.py finds them, here or
ahead in a helper process (`lungkd predict`'s Scout), with the recording's quality and breathing checks.

The recording is decoded once (beside a Scout, an integer-PCM recording not at all: each batch reads its own
stretch from the file); its cycles are prepared, featurised and classified a batch at a time, each batch
resampling only the stretch of audio it needs, so memory does not grow with the recording's length beyond the
decoded samples. Probabilities are calibrated and cycles unlike the model's training data are
marked where the model's card allows it (core/analysis/limits.py).
"""
from __future__ import annotations

import csv
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from lungkd.core.analysis.groundwork import EDITED, Scout, checks_of, edited_cycles, find_cycles
from lungkd.core.analysis.limits import UsableModel, recording_distance
from lungkd.core.analysis.quality import POOR
from lungkd.core.analysis.recording_checks import RecordingChecks, breathing_words
from lungkd.core.analysis.segmentation import FIXED_WINDOWS, Segmentation
from lungkd.core.data.audio import DecodedAudio, in_memory, load_audio, open_audio, resample_without_torch
from lungkd.core.cancel import Cancelled, CancelToken
from lungkd.core.errors import Problem
from lungkd.core.features.cycle_sets import CycleSet
from lungkd.core.labels import CLASS_NAMES, NUM_CLASSES
from lungkd.core.data.metadata import parse_recording_name
from lungkd.core.data.records import Cycle
from lungkd.core.features.prepare import ClipBatch, clip_batches
from lungkd.core.data.patient_metadata import PatientTable, patient_facts, sidecar_path
from lungkd.core.data.prompts import MISSING_WORDING, patient_prompt
from lungkd.core.storage import json_text
from lungkd.core.text import spreadsheet_cell
from lungkd.core.features.inputs import PrepSettings
from lungkd.core.models.card import PromptPolicy
from lungkd.core.models.inference import predict_logits
from lungkd.core.pool import FasterThreads, one_thread_here

CYCLE_SOURCES = ("annotation", "automatic", FIXED_WINDOWS, EDITED)
BATCH_CYCLES = 16  # cycles prepared and classified at once: 15 MB of 16 kHz clips and features, and the model's
# activations (a full-size CNN6's first block alone holds 26 MB per cycle)


@dataclass
class CyclePrediction:
    start: float
    end: float
    probabilities: list[float]  # normal, crackle, wheeze, both
    truth: int | None = None  # the annotated class, when an annotation was found
    segmentation_confidence: float | None = None  # how sure the cycle's bounds are; None when annotated
    training_distance: float | None = None  # from the model's training data; None: the model has no statistics
    unlike_training: bool | None = None  # the distance is beyond the model's limit
    quality: str | None = None  # the cycle's recording quality: good, warning or poor (a prediction means little)
    quality_reasons: list[str] = field(default_factory=list)  # why it is not good, for a clinician

    @property
    def poor(self) -> bool:
        return self.quality == POOR

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def confidence(self) -> float:
        return float(max(self.probabilities))

    @property
    def matches(self) -> bool | None:
        return None if self.truth is None else self.truth == self.predicted


@dataclass
class RecordingAnalysis:
    path: str
    sample_rate: int  # the file's own rate
    duration: float
    device: str | None
    cycle_source: str  # one of CYCLE_SOURCES
    cycles: list[CyclePrediction] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    segmentation_confidence: float | None = None  # of the whole segmentation; None when annotated
    breathing_period: float | None = None  # s, found by the automatic segmentation
    fallback_reason: str = ""  # why the cycles are fixed windows
    calibrated: bool = False  # the probabilities are divided by the model's temperature
    training_distance: float | None = None  # the median of the cycles' distances from the training data
    distance_limit: float | None = None  # the model's limit: farther cycles are unlike its training data
    unlike_training: bool | None = None  # most cycles are beyond the limit; None: the model cannot tell
    model_warnings: list[str] = field(default_factory=list)  # what the model's card says to beware of
    # the automatic segmentation that found the cycles (None when annotated or given): written out only as its
    # phase_* below; the Studio shifts the cycles to the other phase's onsets it keeps
    segmentation: Segmentation | None = field(default=None, repr=False, compare=False)
    quality: str | None = None  # the recording's verdict (core/analysis/quality.py): good, warning or poor
    quality_reasons: list[str] = field(default_factory=list)
    breathing_rate: float | None = None  # breaths per minute (core/analysis/breathing.py); None: none found
    breathing_rate_confidence: float = 0.0  # 0-1
    ie_ratio: float | None = None  # inspiratory over expiratory time (0.5 is 1:2); None: not told apart
    ie_confidence: float = 0.0  # 0-1
    breathing_note: str = ""  # why the rate or the ratio is missing
    prompt: str | None = None  # the sentence a model that reads prompts (BTS) read with every cycle
    prompt_source: str = ""  # where its patient metadata came from; "" when there was none
    prompt_notes: list[str] = field(default_factory=list)  # a prompt built without metadata, the side files' problems

    @property
    def breathing_words(self) -> str:
        """'18 breaths/min (90% sure), I:E 1:2.0 (60% sure)', or what is missing and why."""
        return breathing_words(self.breathing_rate, self.breathing_rate_confidence, self.ie_ratio, self.ie_confidence,
                               self.breathing_note)

    @property
    def name(self) -> str:
        return Path(self.path).stem

    @property
    def phase_confidence(self) -> float | None:
        """0-1: how sure the segmentation is that the cycles start at inspiration; None unless it found them."""
        found = self.segmentation is not None and self.segmentation.method != FIXED_WINDOWS
        return self.segmentation.phase_confidence if found else None

    @property
    def phase_uncertain(self) -> bool:
        return self.segmentation is not None and self.segmentation.phase_uncertain

    @property
    def phase_note(self) -> str:
        """Why the cycles may start at expiration instead; "" where they are sure not to."""
        return self.segmentation.phase_note if self.segmentation else ""

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount([c.predicted for c in self.cycles], minlength=len(CLASS_NAMES))
        return {name: int(n) for name, n in zip(CLASS_NAMES, counts)}

    def to_dict(self) -> dict:
        return {**{k: v for k, v in asdict(self).items() if k not in ("cycles", "segmentation")},
                "cycles": [{"start": c.start, "end": c.end, "prediction": CLASS_NAMES[c.predicted],
                            **dict(zip(CLASS_NAMES, c.probabilities)),
                            "truth": None if c.truth is None else CLASS_NAMES[c.truth], "match": c.matches,
                            "segmentation_confidence": c.segmentation_confidence,
                            "training_distance": c.training_distance, "unlike_training": c.unlike_training,
                            "quality": c.quality, "quality_reasons": c.quality_reasons}
                           for c in self.cycles],
                "phase_confidence": self.phase_confidence, "phase_uncertain": self.phase_uncertain,
                "phase_note": self.phase_note}


# a poor cycle's prediction is marked by its quality column; the recording's columns repeat on each of its rows
QUALITY_COLUMNS = ("quality", "quality_reasons", "recording_quality", "breathing_rate", "breathing_rate_confidence",
                   "ie_ratio", "ie_confidence")
CSV_COLUMNS = ("recording", "cycle_source", "start", "end", "prediction", *(f"p_{n}" for n in CLASS_NAMES),
               "truth", "match", "segmentation_confidence", "training_distance", "unlike_training",
               "phase_confidence", "phase_uncertain", *QUALITY_COLUMNS, "prompt")


def _yes_no(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "no")


def write_csv(analyses: list[RecordingAnalysis], target) -> None:
    """One row per cycle to a path or an open text stream. Recording names are text, never a formula, in a
    spreadsheet (`spreadsheet_cell`)."""
    if not hasattr(target, "write"):
        with open(target, "w", newline="", encoding="utf-8") as f:
            return write_csv(analyses, f)
    writer = csv.writer(target)
    writer.writerow(CSV_COLUMNS)
    for analysis in analyses:
        phase = ("", "") if analysis.phase_confidence is None else (f"{analysis.phase_confidence:.3f}",
                                                                   _yes_no(analysis.phase_uncertain))
        for c in analysis.cycles:
            writer.writerow([spreadsheet_cell(analysis.name), analysis.cycle_source, f"{c.start:.3f}", f"{c.end:.3f}",
                             CLASS_NAMES[c.predicted], *(f"{p:.4f}" for p in c.probabilities),
                             "" if c.truth is None else CLASS_NAMES[c.truth], _yes_no(c.matches),
                             "" if c.segmentation_confidence is None else f"{c.segmentation_confidence:.3f}",
                             "" if c.training_distance is None else f"{c.training_distance:.2f}",
                             _yes_no(c.unlike_training), *phase, *_quality_cells(analysis, c),
                             spreadsheet_cell(analysis.prompt or "")])


def _number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _quality_cells(analysis: RecordingAnalysis, c: CyclePrediction) -> list[str]:
    return [c.quality or "", spreadsheet_cell("; ".join(c.quality_reasons)), analysis.quality or "",
            _number(analysis.breathing_rate, 1), f"{analysis.breathing_rate_confidence:.2f}",
            _number(analysis.ie_ratio, 2), f"{analysis.ie_confidence:.2f}"]


def to_json(analyses: list[RecordingAnalysis]) -> str:
    """Valid JSON whatever the model gave: a NaN probability is written as null."""
    return json_text([a.to_dict() for a in analyses])


# ---------------------------------------------------------------- predicting


@dataclass(frozen=True)
class RecordingPrompt:
    """The prompt of a recording for a model that reads prompts, and what is to be said of it."""

    text: str
    source: str  # where the patient metadata came from; "" when there was none
    notes: list[str]  # the fallback to the missing-value wording, the problems of the files read


def prompt_for(path: Path, policy: PromptPolicy, patients: PatientTable | None = None) -> RecordingPrompt:
    """The prompt as training built it (the card's prompt policy), from the patient metadata found for the
    recording (core.data.patient_metadata); without any, the model's own missing-value wording, said."""
    facts, problems = patient_facts(path, patients)
    text = patient_prompt(path.stem, facts, location_source=policy.location_source, missing=policy.missing,
                          parts=policy.parts)
    notes = [str(p) for p in problems]
    if facts is None:
        notes.insert(0, f"no patient metadata for {path.stem}: prompt built with {MISSING_WORDING[policy.missing]}: "
                        f"'{text}'. Give the patient's age, sex, chest location and device in "
                        f"{sidecar_path(path).name} beside the recording, or with --metadata FILE.csv.")
    return RecordingPrompt(text, facts.source if facts else "", notes)


def recording_clips(decoded: DecodedAudio, cycles: Sequence[Cycle], prep: PrepSettings, batch_size: int,
                    source: str) -> Iterator[ClipBatch]:
    """The model's clips of a user's recording, `batch_size` cycles at a time (`clip_batches`), resampled by numpy
    with the reference's taps: within float32 rounding of the reference's convolution (4e-7), which the CSV of
    the hour and the 10 real recordings does not show, at under two thirds of its time (python -m
    bench.predict_cost). Training and evaluation keep the reference's own resampling."""
    return clip_batches(decoded.samples, decoded.sample_rate, cycles, prep, batch_size, source,
                        resampler=resample_without_torch)


def analyse_recording(path: str | Path, model: UsableModel, *, batch_size: int = BATCH_CYCLES,
                      cancel: CancelToken | None = None, spans: list[tuple[float, float]] | None = None,
                      patients: PatientTable | None = None, threads: FasterThreads | None = None,
                      scout: Scout | None = None) -> RecordingAnalysis:
    """The four class probabilities of every cycle, through the preparation, features and prompt policy the
    model's card says it was trained with. With a `scout` finding the cycles and checking the recording, this
    process reads the recording a batch's stretch at a time where that is exact (`open_audio`)."""
    decoded = open_audio(path) if scout is not None and spans is None else load_audio(path)
    return analyse_samples(path, decoded, model, batch_size=batch_size, cancel=cancel, spans=spans, patients=patients,
                           threads=threads, scout=scout)


@one_thread_here()  # many small operations: torch's intra-op threads slowed the analysis 2.3 times (busy 2 cores)
def analyse_samples(path: str | Path, decoded: DecodedAudio, model: UsableModel, *, batch_size: int = BATCH_CYCLES,
                    cancel: CancelToken | None = None, spans: list[tuple[float, float]] | None = None,
                    patients: PatientTable | None = None, threads: FasterThreads | None = None,
                    scout: Scout | None = None) -> RecordingAnalysis:
    """`analyse_recording` on audio already decoded (at the file's own rate): the cycles are found at that
    rate, the model's clips are cut from the same samples resampled to its rate, `batch_size` at a time. The
    features and the model of each batch compute on the torch threads `threads` chooses (a command with the
    process to itself), everything else on one.
    The model's limits calibrate and mark (without them the probabilities are the plain softmax and nothing is
    marked). `spans` (start, end in seconds) replace the cycles found beside the recording: the cycles of an
    annotation being edited, predicted before it is saved (cycle source "edited", no truth). A model that reads
    prompts gets the recording's, from `patients` (a --metadata table), the sidecar or the ICBHI side files.
    A `scout` (without `spans`) finds the cycles and checks the recording in its helper process, where it can."""
    path = Path(path)
    limits, inputs = model.limits, model.inputs.spec()
    prompt = prompt_for(path, model.inputs.prompts, patients) if model.inputs.prompts else None
    scout = scout if spans is None else None
    found = scout.found(path) if scout else None
    if found is None and spans is None:
        decoded = in_memory(decoded)
        found = find_cycles(path, decoded.samples, decoded.sample_rate)
    elif found is None:
        found = edited_cycles(path, spans)
    cycles, segmentation = found.cycles, found.segmentation
    annotated = found.source == "annotation"
    probabilities = np.zeros((len(cycles), NUM_CLASSES))
    distances = np.full(len(cycles), np.nan)
    clip_problems: list[Problem] = []
    for batch in recording_clips(decoded, cycles, inputs.prep, batch_size, str(path)):
        if cancel is not None and cancel.is_set():
            raise Cancelled("analysis cancelled.")
        with threads.timed(len(batch.clips)) if threads else nullcontext():  # nullcontext: one thread, as the rest
            features = torch.from_numpy(inputs.features.compute(batch.clips))
            data = CycleSet(features, torch.zeros(len(features), dtype=torch.int64),
                            [prompt.text] * len(features) if prompt else None)
            probabilities[batch.indices] = limits.probabilities(predict_logits(model.model, data, batch_size,
                                                                               cancel=cancel))
            distances[batch.indices] = limits.distances(features)
        clip_problems += batch.problems
    parsed = parse_recording_name(path.stem)
    cycle_confidences = [c.confidence for c in segmentation.cycles] if segmentation else [None] * len(cycles)
    known = limits.statistics is not None
    median, recording_unlike = recording_distance(distances, limits.limit)
    if cancel is not None and cancel.is_set():
        raise Cancelled("analysis cancelled.")
    checks = scout.checks(path) if scout else None
    if checks is None:
        decoded = in_memory(decoded)
        checks = checks_of(decoded.samples, decoded.sample_rate, found)
    return with_checks(RecordingAnalysis(
        str(path), decoded.sample_rate, len(decoded.samples) / decoded.sample_rate, parsed.device if parsed else None,
        found.source,
        [CyclePrediction(c.start, c.end, [float(p) for p in probs], c.label if annotated else None, sure,
                         float(d) if known else None, limits.unlike(d))
         for c, probs, sure, d in zip(cycles, probabilities, cycle_confidences, distances)],
        [str(p) for p in (*decoded.warnings, *found.problems, *clip_problems)],
        segmentation.confidence if segmentation else None, segmentation.period if segmentation else None,
        segmentation.reason if segmentation else "", limits.calibrated, median, limits.limit, recording_unlike,
        limits.notes.warnings(), segmentation=segmentation, prompt=prompt.text if prompt else None,
        prompt_source=prompt.source if prompt else "", prompt_notes=prompt.notes if prompt else []), checks)


def with_checks(analysis: RecordingAnalysis, checks: RecordingChecks) -> RecordingAnalysis:
    """The analysis with the recording's quality and breathing, and each cycle's quality (in the cycles' order)."""
    quality, breathing = checks.quality, checks.breathing
    for cycle, span in zip(analysis.cycles, quality.cycles):
        cycle.quality, cycle.quality_reasons = span.verdict, span.reasons
    analysis.quality, analysis.quality_reasons = quality.verdict, quality.recording.reasons
    analysis.breathing_rate, analysis.breathing_rate_confidence = breathing.rate_per_min, breathing.rate_confidence
    analysis.ie_ratio, analysis.ie_confidence = breathing.ie_ratio, breathing.ie_confidence
    analysis.breathing_note = breathing.reason
    return analysis
