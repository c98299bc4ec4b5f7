"""Synthetic recordings for the segmentation tests: rendered by the generator (core/data/synth.py), so their
cycle bounds are known."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace

import numpy as np

from lungkd.core.analysis.segmentation import SegmentationScore, score_segmentation, segment_cycles
from lungkd.core.data.synth import DEVICES, RecordingPlan, plan_dataset, render_recording

SEED = 3  # not one of the seeds the settings were developed on (7 and 11)
TRACHEA = "Tc"


@dataclass
class Breaths:
    device: str
    location: str
    samples: np.ndarray
    sr: int
    spans: list[tuple[float, float]]  # the annotated cycles
    plan: RecordingPlan

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sr

    def score(self, spans) -> SegmentationScore:
        return score_segmentation(self.spans, spans, self.duration)


def synthetic_recordings(per_device: int = 2, seed: int = SEED, change=None, *, distinct_phases: bool = False,
                         at_trachea: bool = False, chest_only: bool = False) -> list[Breaths]:
    """The first `per_device` recordings of each device (of those on the chest wall), `change`d before rendering;
    with `distinct_phases` inspiration and expiration differ as at their site, and `at_trachea` renders them at
    the trachea."""
    _, plans = plan_dataset(120, seed)
    taken: dict[str, int] = defaultdict(int)
    recordings = []
    for index, plan in enumerate(plans):
        device = plan.patient.device.name
        if taken[device] == per_device or ((chest_only or at_trachea) and plan.location == TRACHEA):
            continue
        taken[device] += 1
        if at_trachea:
            plan = replace(plan, location=TRACHEA)
        if change:
            change(plan)
        edges = plan.breathing.annotated_edges
        samples = render_recording(plan, seed, index, distinct_phases=distinct_phases).astype(np.float32)
        recordings.append(Breaths(device, plan.location, samples, plan.sample_rate, list(zip(edges[:-1], edges[1:])),
                                  plan))
    assert set(taken) == set(DEVICES)
    return recordings


def scores_by_device(recordings: list[Breaths], segment=None) -> dict[str, SegmentationScore]:
    """Each device's recordings scored together; `segment` (samples, sr, location) -> spans, by default the
    segmentation's with the recording's location."""
    segment = segment or (lambda samples, sr, location: segment_cycles(samples, sr, location=location).spans)
    totals: dict[str, SegmentationScore] = defaultdict(lambda: SegmentationScore(0, 0, 0, 0, 0))
    for r in recordings:
        totals[r.device] += r.score(segment(r.samples, r.sr, r.location))
    return totals


def total(scores) -> SegmentationScore:
    return sum(scores, SegmentationScore(0, 0, 0, 0, 0))
