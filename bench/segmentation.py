"""Automatic breathing-cycle segmentation against expert annotations, beside plain 4 s windows.

    python -m bench.segmentation [--per-device 10] [--seed 7]

Boundary F1 at ±0.5 s (boundaries within 0.5 s of a file's ends left out), the ratio of cycles found to cycles
annotated (over the annotated stretch), how many recordings fell back to fixed windows, and whether the
confidence predicts the error: the F1 of the recordings above and below the median confidence, and the share of
right boundaries of the cycles above and below the median cycle confidence. "Other phase" is the F1 had the
cycles been shifted to start at the other breathing phase (`shift_to_other_phase`): what choosing the phase won.
Data: the 10 real ICBHI recordings in ../shared/data/icbhi/audio (skipped when absent), segmented with the chest
location of their names; and synthetic recordings of the four ICBHI devices rendered by core/data/synth.py,
whose cycle bounds are known: as the datasets render them (expiration softer), and with inspiration and
expiration differing as at the chest wall and, the same recordings rendered at the trachea, as there.
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile as sf
from mir_eval.util import match_events

from bench.machine import describe
from lungkd.core.analysis.segmentation import (BOUNDARY_TOLERANCE_S, FIXED_WINDOWS, Segmentation, SegmentationScore,
                                               fixed_windows, inner_boundaries, score_segmentation, segment_cycles,
                                               shift_to_other_phase)
from lungkd.core.data.annotations import read_annotation_file
from lungkd.core.data.metadata import parse_recording_name
from lungkd.core.data.synth import DEVICES, plan_dataset, render_recording

REAL_AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "icbhi" / "audio"
TRACHEA = "Tc"


@dataclass
class Recording:
    name: str
    device: str
    location: str
    samples: np.ndarray
    sr: int
    reference: list[tuple[float, float]]

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sr


def real_recordings():
    for path in sorted(REAL_AUDIO.glob("*.wav")):
        samples, sr = sf.read(path, dtype="float32")
        cycles, _ = read_annotation_file(path.with_suffix(".txt"))
        name = parse_recording_name(path.stem)
        yield Recording(path.stem, name.device, name.location, samples, sr, [(c.start, c.end) for c in cycles])


def chosen_plans(per_device: int, seed: int):
    """The first `per_device` planned chest recordings of each device, with their index."""
    _, plans = plan_dataset(40 * per_device, seed)
    taken: dict[str, int] = defaultdict(int)
    for index, plan in enumerate(plans):
        device = plan.patient.device.name
        if taken[device] < per_device and plan.location != TRACHEA:
            taken[device] += 1
            yield index, plan


def synthetic_recordings(per_device: int, seed: int, phases: str):
    """`per_device` chest recordings of each device: "datasets" as the datasets render them, "chest wall" and
    "trachea" with distinct phases, the latter rendered at the trachea. (The datasets' own tracheal recordings are
    left out: their phases are rendered as at the chest wall, expiration the softer.)"""
    for index, plan in chosen_plans(per_device, seed):
        if phases == "trachea":
            plan = replace(plan, location=TRACHEA)
        edges = plan.breathing.annotated_edges
        samples = render_recording(plan, seed, index, distinct_phases=phases != "datasets").astype(np.float32)
        yield Recording(plan.name, plan.patient.device.name, plan.location, samples, plan.sample_rate,
                        list(zip(edges[:-1], edges[1:])))


def starts_after_inspiration(per_device: int, seed: int) -> tuple[int, int]:
    """How many of the synthetic chest recordings start after their first inspiration has ended, of how many."""
    b = [plan.breathing for _, plan in chosen_plans(per_device, seed)]
    return sum(int(-x.edges[0] >= x.insp[0] * (x.edges[1] - x.edges[0])) for x in b), len(b)


def boundary_hits(reference, found: Segmentation, duration: float) -> list[tuple[float, bool]]:
    """(the mean confidence of the cycles it bounds, whether an annotated boundary is within the tolerance) of
    every found boundary that is scored."""
    bounds = inner_boundaries(found.spans, duration)
    matched = {j for _, j in match_events(inner_boundaries(reference, duration), bounds, BOUNDARY_TOLERANCE_S)}
    sure = [np.mean([c.confidence for c in found.cycles if abs(c.start - t) < 1e-6 or abs(c.end - t) < 1e-6])
            for t in bounds]
    return [(float(c), j in matched) for j, c in enumerate(sure)]


@dataclass
class Tally:
    score: SegmentationScore = field(default_factory=lambda: SegmentationScore(0, 0, 0, 0, 0))
    shifted: SegmentationScore = field(default_factory=lambda: SegmentationScore(0, 0, 0, 0, 0))
    windows: SegmentationScore = field(default_factory=lambda: SegmentationScore(0, 0, 0, 0, 0))
    recordings: int = 0
    fallbacks: int = 0
    uncertain: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.score + other.score, self.shifted + other.shifted, self.windows + other.windows,
                     self.recordings + other.recordings, self.fallbacks + other.fallbacks,
                     self.uncertain + other.uncertain)


@dataclass
class Outcome:
    recording: Recording
    segmentation: Segmentation
    score: SegmentationScore
    shifted: SegmentationScore | None  # None where there is no other phase (fixed windows)
    hits: list[tuple[float, bool]]


def segment(recording: Recording) -> Outcome:
    segmentation = segment_cycles(recording.samples, recording.sr, location=recording.location)
    score = score_segmentation(recording.reference, segmentation.spans, recording.duration)
    shifted = None
    if segmentation.method != FIXED_WINDOWS and len(segmentation.other_onsets) >= 2:
        shifted = score_segmentation(recording.reference, shift_to_other_phase(segmentation).spans, recording.duration)
    return Outcome(recording, segmentation, score, shifted,
                   boundary_hits(recording.reference, segmentation, recording.duration))


def tally(outcomes: list[Outcome]) -> dict[str, Tally]:
    tallies: dict[str, Tally] = defaultdict(Tally)
    for o in outcomes:
        t = tallies[o.recording.device]
        t.score += o.score
        t.shifted += o.shifted or SegmentationScore(0, 0, 0, 0, 0)
        t.windows += score_segmentation(o.recording.reference, fixed_windows(o.recording.duration).spans,
                                        o.recording.duration)
        t.recordings += 1
        t.fallbacks += o.segmentation.method == FIXED_WINDOWS
        t.uncertain += o.segmentation.phase_uncertain
    return tallies


def per_recording_table(outcomes: list[Outcome]) -> None:
    print("| recording | cycles annotated / found | boundary F1 | other phase | confidence | phase | phase note |")
    print("|---|---|---|---|---|---|---|")
    for o in outcomes:
        s = o.segmentation
        note = s.phase_note or s.reason
        print(f"| {o.recording.name} | {o.score.reference_cycles} / {o.score.found_cycles} | {o.score.f1:.2f} | "
              f"{o.shifted.f1 if o.shifted else float('nan'):.2f} | {s.confidence:.2f} | {s.phase_confidence:.2f} "
              f"| {note[:90] + ('…' if len(note) > 90 else '')} |")


def per_device_table(outcomes: list[Outcome]) -> None:
    tallies = tally(outcomes)
    print("| device | recordings | F1 | count ratio | other phase: F1 | phase uncertain | fixed-window fallbacks "
          "| 4 s windows: F1 |")
    print("|---|---|---|---|---|---|---|---|")
    rows = [(device, tallies[device]) for device in DEVICES if device in tallies]
    for device, t in rows + [("all", sum((t for _, t in rows), Tally()))]:
        print(f"| {device} | {t.recordings} | {t.score.f1:.2f} | {t.score.count_ratio:.2f} | {t.shifted.f1:.2f} | "
              f"{t.uncertain} | {t.fallbacks} | {t.windows.f1:.2f} |")


def _share(hits) -> str:
    return f"{np.mean([right for _, right in hits]):.0%} of {len(hits)}" if hits else "—"


def confidence_table(outcomes: list[Outcome]) -> None:
    """Does the confidence predict the error? Recordings split at the median confidence and by whether their
    phase is uncertain; boundaries at the median confidence of the cycles they bound."""
    def f1(group) -> str:
        return f"{sum((o.score for o in group), SegmentationScore(0, 0, 0, 0, 0)).f1:.2f} for {len(group)}"

    middle = float(np.median([o.segmentation.confidence for o in outcomes]))
    print(f"- recording confidence: F1 {f1([o for o in outcomes if o.segmentation.confidence > middle])} "
          f"recordings above its median ({middle:.2f}), "
          f"{f1([o for o in outcomes if o.segmentation.confidence <= middle])} at or below")
    print(f"- phase: F1 {f1([o for o in outcomes if not o.segmentation.phase_uncertain])} recordings whose phase is "
          f"sure, {f1([o for o in outcomes if o.segmentation.phase_uncertain])} whose phase is uncertain")
    hits = [h for o in outcomes for h in o.hits]
    if hits:
        middle = float(np.median([sure for sure, _ in hits]))
        print(f"- cycle confidence: boundaries right (an annotated one within 0.5 s) "
              f"{_share([h for h in hits if h[0] > middle])} where the cycles they bound are above the median "
              f"({middle:.2f}), {_share([h for h in hits if h[0] <= middle])} at or below")


def report(title: str, recordings, show_files: bool) -> None:
    started, outcomes = time.perf_counter(), [segment(r) for r in recordings]
    seconds = time.perf_counter() - started
    audio = sum(o.recording.duration for o in outcomes)
    print(f"\n{title}\n")
    if show_files:
        per_recording_table(outcomes)
        print()
    per_device_table(outcomes)
    tracheal = [o for o in outcomes if o.recording.location == TRACHEA]
    if tracheal and len(tracheal) < len(outcomes):
        f1 = sum((o.score for o in tracheal), SegmentationScore(0, 0, 0, 0, 0)).f1
        print(f"\nAt the trachea: F1 {f1:.2f} over {len(tracheal)} recording(s).")
    print()
    confidence_table(outcomes)
    print(f"\nSegmentation speed: {audio / seconds:.0f} s of audio per second ({audio:.0f} s of audio in "
          f"{seconds:.1f} s, shifts and scoring included).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-device", type=int, default=10, help="synthetic recordings of each device")
    parser.add_argument("--seed", type=int, default=7, help="of the synthetic dataset")
    args = parser.parse_args()
    print(f"Machine: {describe()}")
    if any(REAL_AUDIO.glob("*.wav")):
        report("10 real ICBHI recordings", list(real_recordings()), show_files=True)
    else:
        print(f"\n(real ICBHI recordings not found in {REAL_AUDIO}: skipped)")
    late, plans = starts_after_inspiration(args.per_device, args.seed)
    print(f"\nSynthetic chest recordings, {args.per_device} per device (seed {args.seed}); {late} of the {plans} "
          f"start after their first inspiration has ended.")
    for phases, what in (("datasets", "as the datasets render them (expiration softer)"),
                         ("chest wall", "inspiration and expiration as at the chest wall"),
                         ("trachea", "the same recordings rendered at the trachea")):
        report(f"Synthetic, {what}", list(synthetic_recordings(args.per_device, args.seed, phases)), show_files=False)


if __name__ == "__main__":
    main()
