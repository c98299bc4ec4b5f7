"""What the quality check (core/analysis/quality.py) marks, on real and on generated recordings.

    python -m bench.quality [--per-device 10] [--seed 7]

1. The 10 real ICBHI recordings in ../shared/data/icbhi/audio (skipped when absent): each recording's verdict
   and findings, what was measured, and its annotated cycles by verdict.
2. Generated recordings as the generator renders them (core/data/synth.py plants mains hum in some and
   stethoscope friction in most, at places it does not report): per device, the recordings marked and with
   what; hum found in recordings with and without planted hum.
3. The same recordings with the generator's hum and friction turned off (clean): every mark there is false.
4. Each defect inserted into the clean recordings at a known place (synth's `with_*`): how often it is found,
   whether its span lies where it was put, and the cycles away from it that are marked with it (false marks).
And the check's speed: seconds of audio per second.
"""
from __future__ import annotations

import argparse
import time
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.machine import describe
from lungkd.core.analysis.quality import (CLIPPING, FRICTION, HEART, HUM, LOW_SNR, POOR, TOO_QUIET, WARNING,
                                          assess_quality)
from lungkd.core.data.annotations import read_annotation_file
from lungkd.core.data.synth import (DEVICES, at_loud_level, first_of_each_device, plan_dataset, render_recording,
                                    with_clipping, with_friction, with_heart_sounds, with_hum, with_noise)

REAL_AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "icbhi" / "audio"


def marks(span) -> str:
    return ", ".join(f"{f.kind} ({f.severity})" for f in span.findings) or "-"


def real_recordings(clock: list[float]) -> None:
    paths = sorted(REAL_AUDIO.glob("*.wav"))
    if not paths:
        print(f"no real recordings in {REAL_AUDIO}: skipped\n")
        return
    print(f"{len(paths)} real ICBHI recordings\n")
    print("| recording | verdict | findings | clipped | loud level | breath SNR "
          "| annotated cycles good / warning / poor |")
    print("|---|---|---|---|---|---|---|")
    for path in paths:
        samples, sr = sf.read(path, dtype="float32")
        cycles, _ = read_annotation_file(path.with_suffix(".txt"))
        started = time.perf_counter()
        quality = assess_quality(samples, sr, [(c.start, c.end) for c in cycles])
        clock[0] += time.perf_counter() - started
        clock[1] += len(samples) / sr
        m, verdicts = quality.measures, Counter(c.verdict for c in quality.cycles)
        print(f"| {path.stem} | {quality.verdict} | {marks(quality.recording)} | {m.clipped_share:.2%} | "
              f"{m.loud_level_dbfs:.0f} dBFS | {m.snr_db:.0f} dB | {verdicts['good']} / {verdicts[WARNING]} / "
              f"{verdicts[POOR]} |")
    print()


def generated(per_device: int, seed: int, clean: bool):
    """(device, samples, sr, annotated spans, planted hum Hz) of `per_device` recordings of each device."""
    _, plans = plan_dataset(40 * per_device, seed)
    for index, plan in first_of_each_device(plans, per_device):
        hum = plan.patient.traits.hum_hz
        if clean:
            plan.patient = replace(plan.patient, traits=replace(plan.patient.traits, hum_hz=0.0, friction_rate=0.0))
        edges = plan.breathing.annotated_edges
        yield (plan.patient.device.name, render_recording(plan, seed, index), plan.sample_rate,
               list(zip(edges[:-1], edges[1:])), hum)


def generated_as_rendered(recordings, title: str) -> None:
    print(title + "\n")
    print("| device | recordings | marked | findings (recordings) | hum found: planted / not planted |")
    print("|---|---|---|---|---|")
    rows: dict[str, list] = defaultdict(lambda: [0, 0, Counter(), [0, 0], [0, 0]])
    for device, samples, sr, spans, hum in recordings:
        quality = assess_quality(samples, sr, spans)
        row = rows[device]
        row[0] += 1
        row[1] += quality.verdict != "good"
        row[2].update(f.kind for f in quality.recording.findings)
        found = quality.measures.hum_hz is not None
        bucket = row[3] if hum else row[4]
        bucket[0] += found
        bucket[1] += 1
    for device in DEVICES:
        n, marked, kinds, planted, unplanted = rows[device]
        print(f"| {device} | {n} | {marked} | {', '.join(f'{k} {v}' for k, v in kinds.most_common()) or '-'} | "
              f"{planted[0]} of {planted[1]} / {unplanted[0]} of {unplanted[1]} |")
    print()


DEFECTS = {  # name: (kind, where it is put in s, how it is made)
    "clipping, 6-8 s overdriven 4x": (CLIPPING, (6.0, 8.0), lambda x, sr, rng: with_clipping(x, sr, 6.0, 8.0)),
    "friction, 0.25 s at 3 s and 0.4 s at 7 s": (
        FRICTION, (3.0, 7.4), lambda x, sr, rng: with_friction(x, sr, [(3.0, 0.25), (7.0, 0.4)], rng)),
    "too quiet, loud parts at -55 dBFS (16-bit)": (TOO_QUIET, None, lambda x, sr, rng: at_loud_level(x, sr, -55.0)),
    "steady noise, 1x the breath band": (LOW_SNR, None, lambda x, sr, rng: with_noise(x, sr, rng, 1.0)),
    "heart sounds, 40x the RMS at their peak": (HEART, None, lambda x, sr, rng: with_heart_sounds(x, sr, rng, 40)),
    "mains hum 50 Hz, 15 dB below the breath": (HUM, None, lambda x, sr, rng: with_hum(x, sr, 50.0, -15.0)),
}


def defects_inserted(recordings) -> None:
    print("Each defect inserted into the clean recordings\n")
    print("| defect | found | where it was put | cycles away from it marked with it |")
    print("|---|---|---|---|")
    rng = np.random.default_rng(0)
    for name, (kind, where, make) in DEFECTS.items():
        found = placed = away = away_marked = 0
        for _, samples, sr, spans, _ in recordings:
            changed = make(samples, sr, rng)
            if kind == TOO_QUIET:  # through 16-bit samples, as a quiet recording is stored
                changed = np.round(changed * 32767) / 32767
            quality = assess_quality(changed.astype(np.float32), sr, spans)
            finding = next((f for f in quality.recording.findings if f.kind == kind), None)
            found += finding is not None
            placed += finding is not None and (where is None or where[0] - 0.1 <= finding.start and
                                               finding.end <= where[1] + 0.1)
            if where:
                apart = [c for c in quality.cycles if c.end <= where[0] or c.start >= where[1]]
                away += len(apart)
                away_marked += sum(any(f.kind == kind for f in c.findings) for c in apart)
        n = len(recordings)
        print(f"| {name} | {found} of {n} | {placed} of {n} | "
              f"{f'{away_marked} of {away}' if where else 'the whole recording'} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-device", type=int, default=10, help="generated recordings per device")
    parser.add_argument("--seed", type=int, default=7, help="the generator's seed")
    args = parser.parse_args()
    print(describe(), "\n")
    assess_quality(np.zeros(16000, np.float32), 16000)  # torch and the resampler's kernels load once, untimed
    clock = [0.0, 0.0]  # seconds spent, seconds of audio
    real_recordings(clock)
    generated_as_rendered(list(generated(args.per_device, args.seed, clean=False)),
                          f"Generated recordings as rendered ({args.per_device} per device, seed {args.seed})")
    clean = list(generated(args.per_device, args.seed, clean=True))
    generated_as_rendered(clean, "The same, clean (the generator's hum and friction off)")
    defects_inserted(clean)
    started = time.perf_counter()
    for _, samples, sr, spans, _ in clean:
        assess_quality(samples, sr, spans)
    clock[0] += time.perf_counter() - started
    clock[1] += sum(len(r[1]) / r[2] for r in clean)
    print(f"Quality check speed: {clock[1] / clock[0]:.0f} s of audio per second "
          f"({clock[1]:.0f} s of audio in {clock[0]:.1f} s)")


if __name__ == "__main__":
    main()
