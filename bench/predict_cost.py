"""`lungkd predict` against `lungkd evaluate` on the same cycles, and the peak memory of `lungkd predict` on
long recordings.

    python -m bench.predict_cost [--data DIR] [--rounds 3] [--minutes 1 10 60] [--pythonpath DIR]

1. Cost per cycle. The recordings of DATA (default: the real ICBHI recordings in ../shared/data/icbhi/audio,
   else 20 generated ones) with their annotations, so both commands see the same cycles: `evaluate_model` with
   an empty feature cache (decoding, preparation and features in its worker pool, then the model) and again
   with the cache filled, and `analyse_recording` on every recording as `lungkd predict` runs it (one decode,
   batches of cycles, calibrated probabilities and distances). Each measurement runs in a fresh process and
   times the call alone (not Python's start or the imports); the rounds alternate, and medians are shown.
2. Peak memory. A synthetic 4 kHz recording (a Litt3200, the lowest rate ICBHI has) repeated to each length,
   without annotation (so the breathing is segmented first), through `lungkd predict MODEL FILE --csv`; the
   peak resident memory of that process, beside the size of the decoded audio.

--pythonpath runs the children with another LungKD on PYTHONPATH (a checkout's folder holding lungkd/core,
lungkd/app and lungkd/resources), to measure an older version with the same script.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.machine import describe

ROOT = Path(__file__).resolve().parents[1]
REAL_AUDIO = ROOT.parent / "shared" / "data" / "icbhi" / "audio"
DEMO = ROOT / "resources" / "models" / "demo-cnn6"


# ---------------------------------------------------------------- children: one measurement each


def _evaluate(model: str, data: str, cache: str) -> dict:
    from lungkd.core.analysis.evaluation import evaluate_model
    from lungkd.core.features.cache import FeatureCache

    started = time.perf_counter()
    result = evaluate_model(model, data, split="test", cache=FeatureCache(cache))
    return {"seconds": time.perf_counter() - started, "cycles": result.cycles}


def _predict(model: str, data: str) -> dict:
    from lungkd.core.analysis.limits import load_model_with_limits
    from lungkd.core.analysis.predict import analyse_recording

    started = time.perf_counter()
    usable = load_model_with_limits(model)
    cycles = sum(len(analyse_recording(path, usable).cycles) for path in sorted(Path(data).glob("*.wav")))
    return {"seconds": time.perf_counter() - started, "cycles": cycles}


def _child(env: dict, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.predict_cost", "--child", *args], cwd=ROOT,
                         capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- peak memory


def long_recording(path: Path, minutes: float) -> int:
    """A synthetic Litt3200 recording (4 kHz) repeated to `minutes`; returns its sample count."""
    import soundfile as sf

    from lungkd.core.data.synth import plan_dataset, render_recording

    _, plans = plan_dataset(40, seed=5)
    index, plan = next((i, p) for i, p in enumerate(plans) if p.sample_rate == 4000)
    piece = render_recording(plan, 5, index).astype(np.float32)
    samples = int(minutes * 60 * plan.sample_rate)
    sf.write(path, np.tile(piece, -(-samples // len(piece)))[:samples], plan.sample_rate, subtype="PCM_16")
    return samples


def peak_rss_mb(env: dict, *command: str) -> tuple[float, float]:
    """Peak resident memory (MB) and wall time of a command, measured by a parent that runs nothing else."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{out.stderr}")
    peak, seconds = map(float, out.stdout.split())
    return peak, seconds


# ---------------------------------------------------------------- the benchmark


def cost_per_cycle(env: dict, model: str, data: Path, tmp: Path, rounds: int) -> None:
    timings: dict[str, list[float]] = {"evaluate, empty cache": [], "evaluate, cache filled": [], "predict": []}
    cycles = {}
    for round_ in range(rounds):
        cache = str(tmp / f"cache-{round_}")
        for name, child in (("evaluate, empty cache", ("evaluate", model, str(data), cache)),
                            ("evaluate, cache filled", ("evaluate", model, str(data), cache)),
                            ("predict", ("predict", model, str(data)))):
            result = _child(env, *child)
            timings[name].append(result["seconds"] / result["cycles"])
            cycles[name] = result["cycles"]
    assert len(set(cycles.values())) == 1, f"the commands saw different cycles: {cycles}"
    print(f"\n{data}: {cycles['predict']} cycles of {len(list(Path(data).glob('*.wav')))} recordings, "
          f"median of {rounds} rounds")
    print(f"{'':24}{'ms per cycle':>14}{'predict / this':>16}")
    predict = np.median(timings["predict"])
    for name, values in timings.items():
        print(f"{name:24}{1000 * np.median(values):>14.1f}{predict / np.median(values):>16.2f}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="annotated recordings (default: the real ICBHI ones)")
    parser.add_argument("--model", type=Path, default=DEMO)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--minutes", type=float, nargs="*", default=[1, 10, 60])
    parser.add_argument("--pythonpath", type=Path, help="measure the LungKD found here instead")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        print(json.dumps(_evaluate(*rest) if kind == "evaluate" else _predict(*rest)))
        return 0

    env = dict(os.environ)
    if args.pythonpath:
        env["PYTHONPATH"] = str(args.pythonpath.resolve())
    print(describe())
    print(f"LungKD from {args.pythonpath or ROOT}; model {args.model}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = args.data
        if data is None and any(REAL_AUDIO.glob("*.wav")):
            data = REAL_AUDIO
        elif data is None:
            from lungkd.core.data.synth import write_synthetic_dataset

            data = tmp / "synthetic"
            write_synthetic_dataset(data, recordings=20, seed=9)
        model = str(args.model)
        if args.rounds:
            cost_per_cycle(env, model, data, tmp, args.rounds)
        print("\nlungkd predict on one long 4 kHz recording (no annotation: segmented first)")
        print(f"{'minutes':>8}{'cycles':>8}{'decoded audio MB':>18}{'peak RSS MB':>13}{'peak - decoded':>16}{'wall s':>8}")
        for minutes in args.minutes:
            path = tmp / f"long-{minutes:g}min.wav"
            samples = long_recording(path, minutes)
            csv_path = tmp / "cycles.csv"
            peak, seconds = peak_rss_mb(env, sys.executable, "-m", "lungkd.core.cli", "predict", model, str(path),
                                        "--csv", str(csv_path))
            rows = len(csv_path.read_text().splitlines()) - 1
            decoded = samples * 4 / 2**20
            print(f"{minutes:>8g}{rows:>8}{decoded:>18.1f}{peak:>13.0f}{peak - decoded:>16.0f}{seconds:>8.0f}",
                  flush=True)
            path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
