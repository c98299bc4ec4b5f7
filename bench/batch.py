"""A folder of recordings analysed as `lungkd predict FOLDER` does it (core.analysis.batch.analyse_folder with
the results cache, a Scout finding the cycles in its helper process, the model on one thread or two): cold,
and again after a cancel at half way, resumed; and cold without the Scout, for what it saves.

    python -m bench.batch [--recordings 200] [--model DIR] [--workspace DIR]

The recordings are generated (core.data.synth: four devices at 4 to 44.1 kHz, every tenth one repeated to
three times its length) and left without annotations, so each is segmented first, as a user's folder would
be. One process (with the Scout's helper), the model loaded once; each run has a results cache of its own.
Prints recordings per second of the cold runs, and the resumed run's time as a share of the cold run's.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.machine import describe

DEMO = Path(__file__).resolve().parents[1] / "resources" / "models" / "demo-cnn6"


def generate(folder: Path, recordings: int) -> list[Path]:
    """Generated recordings of mixed rates and lengths, without their annotations."""
    import soundfile as sf

    from lungkd.core.data.synth import write_synthetic_dataset

    if not any(folder.glob("*.wav")):
        write_synthetic_dataset(folder, recordings=recordings, seed=11)
        for number, wav in enumerate(sorted(folder.glob("*.wav"))):
            wav.with_suffix(".txt").unlink()
            if number % 10 == 0:
                samples, rate = sf.read(wav, dtype="float32")
                sf.write(wav, np.tile(samples, 3), rate, subtype="PCM_16")
    return sorted(folder.glob("*.wav"))


def timed(run) -> tuple[float, object]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", type=int, default=200)
    parser.add_argument("--model", type=Path, default=DEMO)
    parser.add_argument("--workspace", type=Path, help="keep the recordings here (default: a temporary folder)")
    args = parser.parse_args()

    from lungkd.core.analysis.batch import analyse_folder
    from lungkd.core.analysis.groundwork import Scout
    from lungkd.core.analysis.limits import load_model_with_limits
    from lungkd.core.analysis.results import ResultsCache
    from lungkd.core.cancel import Cancelled, CancelToken
    from lungkd.core.data.audio import probe_audio
    from lungkd.core.pool import default_workers

    print(f"{describe()}; load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="lungkd-batch-") as tmp:
        workspace = args.workspace or Path(tmp)
        paths = generate(workspace / f"recordings-{args.recordings}", args.recordings)
        infos = [probe_audio(p) for p in paths]
        rates = sorted({i.sample_rate for i in infos})
        minutes = sum(i.frames / i.sample_rate for i in infos) / 60
        print(f"{len(paths)} recordings, {minutes:.0f} minutes of audio, {len(rates)} sample rates "
              f"({', '.join(f'{r / 1000:g}' for r in rates)} kHz), {min(i.frames / i.sample_rate for i in infos):.0f}"
              f"-{max(i.frames / i.sample_rate for i in infos):.0f} s each")
        model = load_model_with_limits(args.model)
        folder = paths[0].parent

        def as_predict(results, scouted=True, **options):
            if not scouted:
                return analyse_folder([folder], model, results, threads=default_workers(), **options)
            with Scout() as scout:
                return analyse_folder([folder], model, results, threads=default_workers(), scout=scout, **options)

        # the Scout's run first: the first run pays the model's and the threads' warm-up
        cold_s, cold = timed(lambda: as_predict(ResultsCache(workspace / f"cold-{time.time()}")))
        alone_s, alone = timed(lambda: as_predict(ResultsCache(workspace / f"alone-{time.time()}"), scouted=False))
        results = ResultsCache(workspace / f"resumed-{time.time()}")
        cancel, done = CancelToken(), []

        def stop_half_way(outcome) -> None:
            done.append(outcome)
            if len(done) == len(paths) // 2:
                cancel.cancel()

        started = time.perf_counter()
        try:
            as_predict(results, cancel=cancel, on_result=stop_half_way)
        except Cancelled:
            pass
        first_s = time.perf_counter() - started
        resumed_s, resumed = timed(lambda: as_predict(results))
        reused = sum(r.reused for r in resumed.results)
        print(f"load {os.getloadavg()[0]:.1f} at the end")
        print(f"{'run':<44}{'s':>8}{'recordings/s':>14}")
        print(f"{'cold, without the Scout':<44}{alone_s:>8.1f}{len(alone.results) / alone_s:>14.2f}")
        print(f"{'cold':<44}{cold_s:>8.1f}{len(cold.results) / cold_s:>14.2f}")
        print(f"{f'cancelled after {len(done)} recordings':<44}{first_s:>8.1f}{len(done) / first_s:>14.2f}")
        print(f"{f'resumed ({reused} from the results cache)':<44}{resumed_s:>8.1f}"
              f"{(len(resumed.results) - reused) / resumed_s:>14.2f}")
        print(f"resumed / cold: {resumed_s / cold_s:.2f}; cancelled + resumed / cold: "
              f"{(first_s + resumed_s) / cold_s:.2f}; failures {len(cold.failures)} cold, {len(resumed.failures)} "
              f"resumed; the resumed run's rows equal the cold run's: "
              f"{sorted(map(_rows, cold.results)) == sorted(map(_rows, resumed.results))}, and the cold run's "
              f"without the Scout: {sorted(map(_rows, cold.results)) == sorted(map(_rows, alone.results))}")
    return 0


def _rows(recording) -> tuple:
    return recording.name, tuple(tuple(row) for row in recording.csv_rows)


if __name__ == "__main__":
    sys.exit(main())
