"""Automatic breathing-cycle segmentation against expert annotations, beside plain 4 s windows.

    python -m bench.segmentation [--per-device 10] [--seed 7]

Scores each device's recordings together: boundary F1 at ±0.5 s (boundaries within 0.5 s of a file's ends
left out), the ratio of cycles found to cycles annotated (over the annotated stretch), how many recordings
fell back to fixed windows, and how often a cycle inside the annotated stretch is right (it overlaps an
annotated cycle by at least 60 % of their union) when the segmentation is sure of it (confidence >= 0.5)
and when it is not.
Data: the 10 real ICBHI recordings in ../shared/data/icbhi/audio (skipped when absent) and synthetic
recordings of the four ICBHI devices rendered by core/data/synth.py, whose cycle bounds are known.
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.machine import describe
from lungkd.core.analysis.segmentation import (FIXED_WINDOWS, SegmentationScore, fixed_windows,
                                               score_segmentation, segment_cycles)
from lungkd.core.data.annotations import read_annotation_file
from lungkd.core.data.synth import DEVICES, plan_dataset, render_recording

REAL_AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "icbhi" / "audio"
# The two real recordings the settings were developed on; the other eight were held out (see bench/README.md).
DEVELOPED_ON = {"106_2b1_Pl_mc_LittC2SE", "107_2b3_Al_mc_AKGC417L"}
SURE = 0.5


def real_recordings():
    for path in sorted(REAL_AUDIO.glob("*.wav")):
        samples, sr = sf.read(path, dtype="float32")
        cycles, _ = read_annotation_file(path.with_suffix(".txt"))
        yield path.stem, path.stem.split("_")[-1], samples, sr, [(c.start, c.end) for c in cycles]


def synthetic_recordings(per_device: int, seed: int):
    _, plans = plan_dataset(40 * per_device, seed)
    taken: dict[str, int] = defaultdict(int)
    for index, plan in enumerate(plans):
        device = plan.patient.device.name
        if taken[device] < per_device:
            taken[device] += 1
            edges = plan.breathing.annotated_edges
            yield plan.name, device, render_recording(plan, seed, index).astype(np.float32), plan.sample_rate, \
                list(zip(edges[:-1], edges[1:]))


def right(cycle, reference) -> bool:
    """The cycle overlaps an annotated cycle by at least 60 % of their union."""
    for start, end in reference:
        overlap = min(cycle.end, end) - max(cycle.start, start)
        if overlap > 0 and overlap / (max(cycle.end, end) - min(cycle.start, start)) >= 0.6:
            return True
    return False


class Tally:
    def __init__(self) -> None:
        self.score = SegmentationScore(0, 0, 0, 0, 0)
        self.recordings = self.fallbacks = 0
        self.sure = [0, 0]  # right, all
        self.unsure = [0, 0]

    def add(self, segmentation, reference, duration: float) -> SegmentationScore:
        score = score_segmentation(reference, segmentation.spans, duration)
        self.score += score
        self.recordings += 1
        self.fallbacks += segmentation.method == FIXED_WINDOWS
        first, last = reference[0][0], reference[-1][1]
        for cycle in (c for c in segmentation.cycles if first <= (c.start + c.end) / 2 <= last):
            bucket = self.sure if cycle.confidence >= SURE else self.unsure
            bucket[0] += right(cycle, reference)
            bucket[1] += 1
        return score


def share(bucket) -> str:
    return f"{bucket[0] / bucket[1]:.0%} of {bucket[1]}" if bucket[1] else "—"


def table(title: str, recordings, show_files: bool) -> None:
    automatic, windows = defaultdict(Tally), defaultdict(Tally)
    seconds = audio_seconds = 0.0
    if show_files:
        print(f"\n{title}, per recording\n")
        print("| recording | cycles annotated / found | boundary F1 | confidence | method | settings |")
        print("|---|---|---|---|---|---|")
    for name, device, samples, sr, reference in recordings:
        duration = len(samples) / sr
        start = time.perf_counter()
        segmentation = segment_cycles(samples, sr)
        seconds += time.perf_counter() - start
        audio_seconds += duration
        score = automatic[device].add(segmentation, reference, duration)
        windows[device].add(fixed_windows(duration), reference, duration)
        if show_files:
            method = segmentation.method + (f" ({segmentation.reason})" if segmentation.reason else "")
            role = "developed on" if name in DEVELOPED_ON else "held out"
            print(f"| {name} | {score.reference_cycles} / {score.found_cycles} | {score.f1:.2f} | "
                  f"{segmentation.confidence:.2f} | {method} | {role} |")
    print(f"\n{title}, per device: automatic segmentation | plain 4 s windows\n")
    print("| device | recordings | F1 | count ratio | fixed-window fallbacks | right when sure | right when unsure "
          "| 4 s windows: F1 | count ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = [(device, automatic[device], windows[device]) for device in DEVICES if device in automatic]
    total_auto, total_windows = Tally(), Tally()
    for tally, parts in ((total_auto, automatic.values()), (total_windows, windows.values())):
        for part in parts:
            tally.score += part.score
            tally.recordings += part.recordings
            tally.fallbacks += part.fallbacks
            tally.sure = [a + b for a, b in zip(tally.sure, part.sure)]
            tally.unsure = [a + b for a, b in zip(tally.unsure, part.unsure)]
    for device, auto, plain in rows + [("all", total_auto, total_windows)]:
        print(f"| {device} | {auto.recordings} | {auto.score.f1:.2f} | {auto.score.count_ratio:.2f} | "
              f"{auto.fallbacks} of {auto.recordings} | {share(auto.sure)} | {share(auto.unsure)} | "
              f"{plain.score.f1:.2f} | {plain.score.count_ratio:.2f} |")
    print(f"\nSegmentation speed: {audio_seconds / seconds:.0f} s of audio per second "
          f"({audio_seconds:.0f} s of audio in {seconds:.1f} s).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-device", type=int, default=10, help="synthetic recordings of each device")
    parser.add_argument("--seed", type=int, default=7, help="of the synthetic dataset")
    args = parser.parse_args()
    print(f"Machine: {describe()}")
    if any(REAL_AUDIO.glob("*.wav")):
        table("10 real ICBHI recordings", real_recordings(), show_files=True)
    else:
        print(f"\n(real ICBHI recordings not found in {REAL_AUDIO}: skipped)")
    table(f"Synthetic recordings, {args.per_device} per device (seed {args.seed})",
          synthetic_recordings(args.per_device, args.seed), show_files=False)


if __name__ == "__main__":
    main()
