"""What a batch of the model's input costs: Kaldi's fbank of 16 eight-second clips and their per-sample
normalisation, the latter beside the formula it computes ((x - mean) / (2 std), numpy's std), alternated in one
run; the same numbers each time (checked), medians of the rounds.

    python -m bench.features [--rounds 30]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

from bench.machine import describe


def formula(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=(-2, -1), keepdims=True)
    return ((x64 - mean) / (2 * x64.std(axis=(-2, -1), keepdims=True, ddof=1))).astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()

    from lungkd.core.features.spectral import fbank, normalize_fbank

    print(describe())
    clips = (0.1 * np.random.default_rng(0).standard_normal((16, 128000))).astype(np.float32)
    raw = fbank(clips)
    if not np.array_equal(normalize_fbank(raw), formula(raw)):
        raise SystemExit("normalize_fbank differs from the formula")
    seconds: dict[str, list[float]] = {"fbank": [], "normalize_fbank": [], "the formula": []}
    for _ in range(args.rounds):
        for name, work in (("fbank", lambda: fbank(clips)), ("normalize_fbank", lambda: normalize_fbank(raw)),
                           ("the formula", lambda: formula(raw))):
            started = time.perf_counter()
            work()
            seconds[name].append(time.perf_counter() - started)
    median = {name: statistics.median(values) * 1000 for name, values in seconds.items()}
    print(f"a batch of 16 clips of 8 s ({raw.shape[1]} frames x {raw.shape[2]} mel bins), medians of {args.rounds} "
          f"rounds, load {os.getloadavg()[0]:.1f}")
    for name, ms in median.items():
        print(f"{name:<18}{ms:>8.1f} ms")
    print(f"normalize_fbank / the formula: {median['normalize_fbank'] / median['the formula']:.2f}; "
          f"fbank + normalize_fbank / fbank + the formula: "
          f"{(median['fbank'] + median['normalize_fbank']) / (median['fbank'] + median['the formula']):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
