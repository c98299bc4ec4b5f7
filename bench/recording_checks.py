"""What the recording's quality and breathing (core/analysis/recording_checks.py) add to an analysis.

    python -m bench.recording_checks [--minutes 10 60]

1. The 10 real ICBHI recordings (../shared/data/icbhi/audio, annotated; skipped when absent), the shipped demo
   model: per recording, the whole analysis (`analyse_samples`, the checks included) and the checks alone on
   the same decoded samples and cycles, medians of 3 rounds; their ratio.
2. Long recordings without annotation (a generated 4 kHz recording repeated, as bench.predict_cost makes them):
   the checks' time and the peak of the memory they allocate (tracemalloc: numpy's arrays included) over the
   decoded samples' own size.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

from bench.machine import describe
from bench.predict_cost import long_recording
from lungkd.core.analysis.limits import load_model_with_limits
from lungkd.core.analysis.predict import analyse_samples, find_cycles
from lungkd.core.analysis.recording_checks import check_recording
from lungkd.core.data.audio import load_audio

ROOT = Path(__file__).resolve().parents[1]
REAL_AUDIO = ROOT.parent / "shared" / "data" / "icbhi" / "audio"
DEMO_MODEL = ROOT / "resources" / "models" / "demo-cnn6"


def checks_of(path: Path, decoded):
    found = find_cycles(path, decoded.samples, decoded.sample_rate)
    return lambda: check_recording(decoded.samples, decoded.sample_rate, [(c.start, c.end) for c in found.cycles],
                                   found.source, found.segmentation)


def timed(call, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def real_recordings(rounds: int) -> None:
    paths = sorted(REAL_AUDIO.glob("*.wav"))
    if not paths:
        print(f"no real recordings in {REAL_AUDIO}: skipped\n")
        return
    model = load_model_with_limits(DEMO_MODEL)
    print(f"{len(paths)} real ICBHI recordings (annotated), the demo model, medians of {rounds} rounds\n")
    print("| recording | cycles | whole analysis, ms | quality and breathing, ms | share |")
    print("|---|---|---|---|---|")
    totals = [0.0, 0.0]
    for path in paths:
        decoded = load_audio(path)
        whole = timed(lambda: analyse_samples(path, decoded, model), rounds)
        checks = timed(checks_of(path, decoded), rounds)
        totals[0] += whole
        totals[1] += checks
        cycles = len(find_cycles(path, decoded.samples, decoded.sample_rate).cycles)
        print(f"| {path.stem} | {cycles} | {1000 * whole:.0f} | {1000 * checks:.0f} | {checks / whole:.0%} |")
    print(f"| **all** | | {1000 * totals[0]:.0f} | {1000 * totals[1]:.0f} | **{totals[1] / totals[0]:.0%}** |\n")


def long_recordings(minutes: list[float]) -> None:
    print("Long 4 kHz recordings without annotation (segmented first; the segmentation is not counted)\n")
    print("| recording | cycles | quality and breathing, s | audio s per s | decoded samples | peak allocated |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for length in minutes:
            path = Path(tmp) / f"long-{length:g}min.wav"
            long_recording(path, length)
            decoded = load_audio(path)
            check = checks_of(path, decoded)
            tracemalloc.start()
            started = time.perf_counter()
            checks = check()
            seconds = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            audio_mb = decoded.samples.nbytes / 2 ** 20
            print(f"| {length:g} min | {len(checks.quality.cycles)} | {seconds:.1f} | {length * 60 / seconds:.0f} | "
                  f"{audio_mb:.1f} MB | {peak / 2 ** 20:.1f} MB |")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--minutes", type=float, nargs="*", default=[10.0, 60.0])
    args = parser.parse_args()
    print(describe(), "\n")
    real_recordings(args.rounds)
    long_recordings(args.minutes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
