"""Per-cycle predictions on a user's recording: the engine behind `lungkd predict` and LungKD Studio.

Cycles come from the annotation file beside the recording when there is one (ground truth is then
known), else from an energy-envelope segmentation of the breathing, else from fixed windows.
"""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from lungkd.core.data.annotations import clip_cycles_to_duration, read_annotation_file
from lungkd.core.data.audio import load_audio, resample
from lungkd.core.cancel import Cancelled, CancelToken
from lungkd.core.errors import Problem
from lungkd.core.features.cycle_sets import input_settings
from lungkd.core.labels import CLASS_NAMES
from lungkd.core.data.metadata import parse_recording_name
from lungkd.core.features.prepare import prepare_cycles
from lungkd.core.data.prompts import LOCATION_WORDS, build_prompt
from lungkd.core.data.records import Cycle
from lungkd.core.training.trainer import CycleSet, predict_logits

FIXED_WINDOW_S = 4.0
MIN_CYCLE_S, MAX_CYCLE_S = 1.0, 8.0
CYCLE_SOURCES = ("annotation", "automatic", "fixed windows", "edited")


@dataclass
class CyclePrediction:
    start: float
    end: float
    probabilities: list[float]  # normal, crackle, wheeze, both
    truth: int | None = None  # the annotated class, when an annotation was found

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

    @property
    def name(self) -> str:
        return Path(self.path).stem

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount([c.predicted for c in self.cycles], minlength=len(CLASS_NAMES))
        return {name: int(n) for name, n in zip(CLASS_NAMES, counts)}

    def to_dict(self) -> dict:
        return {**{k: v for k, v in asdict(self).items() if k != "cycles"},
                "cycles": [{"start": c.start, "end": c.end, "prediction": CLASS_NAMES[c.predicted],
                            **dict(zip(CLASS_NAMES, c.probabilities)),
                            "truth": None if c.truth is None else CLASS_NAMES[c.truth], "match": c.matches}
                           for c in self.cycles]}


CSV_COLUMNS = ("recording", "cycle_source", "start", "end", "prediction", *(f"p_{n}" for n in CLASS_NAMES),
               "truth", "match")


def write_csv(analyses: list[RecordingAnalysis], target) -> None:
    """One row per cycle to a path or an open text stream."""
    if not hasattr(target, "write"):
        with open(target, "w", newline="", encoding="utf-8") as f:
            return write_csv(analyses, f)
    writer = csv.writer(target)
    writer.writerow(CSV_COLUMNS)
    for analysis in analyses:
        for c in analysis.cycles:
            writer.writerow([analysis.name, analysis.cycle_source, f"{c.start:.3f}", f"{c.end:.3f}",
                             CLASS_NAMES[c.predicted], *(f"{p:.4f}" for p in c.probabilities),
                             "" if c.truth is None else CLASS_NAMES[c.truth],
                             "" if c.matches is None else ("yes" if c.matches else "no")])


def to_json(analyses: list[RecordingAnalysis]) -> str:
    return json.dumps([a.to_dict() for a in analyses], indent=2)


# ---------------------------------------------------------------- finding the cycles


def breathing_envelope(samples: np.ndarray, sr: int, hop_s: float = 0.02) -> tuple[np.ndarray, float]:
    """RMS of the 100-1000 Hz band (where breath sounds live) every `hop_s`, smoothed over 0.3 s."""
    spectrum = np.fft.rfft(samples)
    freqs = np.fft.rfftfreq(len(samples), 1 / sr)
    band = np.fft.irfft(np.where((freqs >= 100) & (freqs <= 1000), spectrum, 0), n=len(samples))
    hop = max(1, int(hop_s * sr))
    frames = len(band) // hop
    rms = np.sqrt((band[: frames * hop].reshape(frames, hop) ** 2).mean(axis=1) + 1e-12)
    width = max(1, int(0.3 / hop_s))
    return np.convolve(rms, np.ones(width) / width, mode="same"), hop / sr


def segment_cycles(samples: np.ndarray, sr: int) -> tuple[list[tuple[float, float]], str]:
    """Breathing cycles between the quiet pauses of the envelope; fixed windows when none are plausible."""
    duration = len(samples) / sr
    envelope, step = breathing_envelope(samples, sr)
    if envelope.size > 10 and envelope.max() > 4 * np.percentile(envelope, 10):
        quiet = envelope < np.percentile(envelope, 10) + 0.25 * (np.percentile(envelope, 90) - np.percentile(envelope, 10))
        # the middle of each quiet stretch is a boundary between breaths
        edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
        starts, ends = (edges[1::2], edges[2::2]) if quiet[0] else (edges[::2], edges[1::2])
        bounds = sorted({0.0, duration, *(((s + e) / 2 * step) for s, e in zip(starts, ends))})
        cycles = [(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
        plausible = [c for c in cycles if MIN_CYCLE_S <= c[1] - c[0] <= MAX_CYCLE_S]
        if len(plausible) >= max(2, 0.6 * len(cycles)):
            return [(round(a, 3), round(b, 3)) for a, b in cycles if b - a >= MIN_CYCLE_S / 2], "automatic"
    starts = np.arange(0.0, duration, FIXED_WINDOW_S)
    return [(round(s, 3), round(min(s + FIXED_WINDOW_S, duration), 3)) for s in starts
            if min(s + FIXED_WINDOW_S, duration) - s >= 0.5], "fixed windows"


def find_cycles(path: Path, samples: np.ndarray, sr: int) -> tuple[list[Cycle], str, list[Problem]]:
    annotation = path.with_suffix(".txt")
    if annotation.is_file():
        cycles, problems = read_annotation_file(annotation, path.stem)
        if cycles:
            kept, clipped = clip_cycles_to_duration(cycles, len(samples) / sr, annotation)
            return list(kept), "annotation", problems + clipped
    spans, method = segment_cycles(samples, sr)
    return [Cycle(path.stem, i, a, b, 0, 0) for i, (a, b) in enumerate(spans)], method, []


# ---------------------------------------------------------------- predicting


def analyse_recording(path: str | Path, model: torch.nn.Module, *, batch_size: int = 16,
                      cancel: CancelToken | None = None,
                      spans: list[tuple[float, float]] | None = None) -> RecordingAnalysis:
    """The four class probabilities of every cycle, through the model's own preparation and features.
    `spans` (start, end in seconds) replace the cycles found beside the recording: the cycles of an
    annotation being edited, predicted before it is saved (cycle source "edited", no truth)."""
    path = Path(path)
    prep, features = input_settings(model.arch_name)
    decoded = load_audio(path)  # at its own rate, for the duration and the segmentation
    if spans is None:
        cycles, source, problems = find_cycles(path, decoded.samples, decoded.sample_rate)
    else:
        cycles, source, problems = [Cycle(path.stem, i, a, b, 0, 0) for i, (a, b) in enumerate(spans)], "edited", []
    # one decode serves both: the segmentation at the file's rate, the model at its own
    samples = resample(decoded.samples, decoded.sample_rate, prep.sample_rate)
    clips, clip_problems = prepare_cycles(samples, prep.sample_rate, cycles, prep, str(path))
    if cancel is not None and cancel.is_set():
        raise Cancelled("analysis cancelled.")
    inputs = torch.from_numpy(features.compute(clips)) if len(clips) else torch.zeros(0)
    parsed = parse_recording_name(path.stem)
    prompts = None
    if model.arch_name == "bts":  # no patient metadata here: the sentence keeps what the file name says
        prompts = [build_prompt(location=LOCATION_WORDS.get(parsed.location) if parsed else None,
                                device=parsed.device if parsed else None)] * len(cycles)
    data = CycleSet(inputs, torch.tensor([c.label for c in cycles], dtype=torch.int64), prompts)
    probabilities = torch.softmax(predict_logits(model, data, batch_size, cancel=cancel), dim=1).numpy() \
        if len(cycles) else np.zeros((0, 4))
    return RecordingAnalysis(
        str(path), decoded.sample_rate, len(decoded.samples) / decoded.sample_rate, parsed.device if parsed else None,
        source, [CyclePrediction(c.start, c.end, [float(p) for p in probs], c.label if source == "annotation" else None)
                 for c, probs in zip(cycles, probabilities)],
        [str(p) for p in (*decoded.warnings, *problems, *clip_problems)])


def display_spectrogram(samples: np.ndarray, sr: int, *, window_s: float = 0.032, hop_s: float = 0.008,
                        max_frames: int = 4000) -> tuple[np.ndarray, float, float]:
    """dBFS magnitude (frames x bins) for display, with the seconds per frame and the Hz per bin; the hop
    grows on long recordings so the image stays under `max_frames` columns."""
    n_fft = 1 << max(6, int(np.ceil(np.log2(window_s * sr))))
    hop = max(int(hop_s * sr), int(np.ceil(len(samples) / max_frames)))
    window = torch.hann_window(n_fft)
    spec = torch.stft(torch.from_numpy(samples.astype(np.float32)), n_fft, hop, window=window,
                      return_complex=True).abs() * (2 / window.sum())  # a full-scale sine reads 0 dBFS
    db = 20 * torch.log10(spec + 1e-9)
    return db.T.numpy(), hop / sr, sr / n_fft
