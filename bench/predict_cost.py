"""Where `lungkd predict` spends its time, stage by stage, beside the model's own cost; its first output and its
peak memory.

    python -m bench.predict_cost [--model DIR] [--minutes 60] [--data DIR] [--rounds 1] [--pythonpath DIR]

1. Stages. A fresh process imports the command line, then runs the command as the shell would
   (core.cli.main: `predict MODEL FILES --csv --out FILE --workspace NEW`) with its import of torch and the
   analysis timed, and each stage's function timed where the code calls it: decoding, finding the cycles (the
   segmentation or the annotation; where the command's helper process finds them, the time it waited for them),
   resampling and cutting the clips, the features, the model, calibration and distances, the quality and
   breathing checks (or the wait for the helper's), hashing and the results cache, writing. The limit is the
   features and the model alone on the same cycles in the same batches (their clips cut beforehand), measured
   afterwards in the same process, with one torch thread and with torch's default (the faster counts). Start-up
   is the time from starting the process to the command line imported, as the parent saw it.
   With --rounds N the command and its limit are measured N times, each pair in its own process (on a shared
   machine the limit alone moved by a third between runs): the ratio of each round is printed, and the stage
   table of the round with the median ratio.
2. The command from outside: its wall time, the time to its first line of output, and its peak memory, both
   resident (VmHWM, which counts the pages of the shared libraries torch maps: about 600 MB for a CUDA build)
   and anonymous (what the process allocated itself; sampled every 10 ms), alone and with its helper
   processes' added (sampled together).

Data: one synthetic 4 kHz recording (a Litt3200, the lowest rate ICBHI has) repeated to --minutes, without
annotation (segmented first), and the recordings of --data (default: the 10 real ICBHI recordings in
../shared/data/icbhi/audio with their annotations). --pythonpath runs the children with another LungKD on
PYTHONPATH (a checkout's folder holding lungkd/core, lungkd/app and lungkd/resources), for a before and after.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REAL_AUDIO = ROOT.parent / "shared" / "data" / "icbhi" / "audio"
DEMO = ROOT / "resources" / "models" / "demo-cnn6"
STAGES = ("start-up and imports", "importing torch and the analysis", "loading the model", "decoding",
          "finding the cycles", "resampling and clips", "features", "the model", "calibration and distances",
          "quality and breathing checks", "hashing and the results cache", "writing")


# ---------------------------------------------------------------- the child: the command with its stages timed


class StageClock:
    """Seconds spent in each stage, from functions wrapped where the code looks them up."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, owner, name: str, stage: str) -> None:
        function = getattr(owner, name)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - started
        setattr(owner, name, timed)

    def wrap_generator(self, owner, name: str, stage: str) -> None:
        """A generator's own time: what its `next` takes, not what the caller does between items."""
        function = getattr(owner, name)

        def timed(*args, **kwargs):
            items = function(*args, **kwargs)
            while True:
                started = time.perf_counter()
                try:
                    item = next(items)
                except StopIteration:
                    return
                finally:
                    self.seconds[stage] += time.perf_counter() - started
                yield item
        setattr(owner, name, timed)


def _instrument(clock: StageClock) -> None:
    from lungkd.core import storage
    from lungkd.core.analysis import batch, groundwork, limits, predict, results
    from lungkd.core.features.inputs import ClapFeatureSettings, FbankSettings

    clock.wrap(limits, "load_model_with_limits", "loading the model")
    clock.wrap(predict, "load_audio", "decoding")
    clock.wrap(predict, "open_audio", "decoding")  # beside the helper: a batch's stretch is read with its clips
    clock.wrap(predict, "find_cycles", "finding the cycles")  # here, or (below) waiting for the helper's
    clock.wrap(groundwork.Scout, "found", "finding the cycles")
    clock.wrap(predict, "checks_of", "quality and breathing checks")
    clock.wrap(groundwork.Scout, "checks", "quality and breathing checks")
    clock.wrap_generator(predict, "recording_clips", "resampling and clips")
    clock.wrap(FbankSettings, "compute", "features")
    clock.wrap(ClapFeatureSettings, "compute", "features")
    clock.wrap(predict, "predict_logits", "the model")
    clock.wrap(limits.ModelLimits, "probabilities", "calibration and distances")
    clock.wrap(limits.ModelLimits, "distances", "calibration and distances")
    clock.wrap(batch, "file_sha256", "hashing and the results cache")
    clock.wrap(results.ResultsCache, "entry", "hashing and the results cache")
    clock.wrap(results.ResultsCache, "put", "hashing and the results cache")
    clock.wrap(results.AnalysedRecording, "of", "writing")
    clock.wrap(storage, "write_text_atomic", "writing")


def _model_limit(model_folder: str, table: Path) -> tuple[float, int]:
    """Seconds the features and the model alone take on the cycles of the CSV `table`, in the batches
    `lungkd predict` makes (clips cut beforehand, not timed): the faster of one torch thread and torch's
    default."""
    import torch

    default = torch.get_num_threads()
    measured = []
    for threads in sorted({1, default}):
        torch.set_num_threads(threads)
        measured.append(_features_and_model(model_folder, table))
    torch.set_num_threads(default)
    return min(measured)


def _features_and_model(model_folder: str, table: Path) -> tuple[float, int]:
    import torch

    from lungkd.core.analysis.limits import load_model_with_limits
    from lungkd.core.analysis.predict import BATCH_CYCLES
    from lungkd.core.data.audio import load_audio
    from lungkd.core.data.records import Cycle
    from lungkd.core.features.cycle_sets import CycleSet
    from lungkd.core.features.prepare import clip_batches
    from lungkd.core.models.inference import predict_logits

    model = load_model_with_limits(model_folder)
    inputs = model.inputs.spec()
    spans = defaultdict(list)
    for row in csv.DictReader(table.open()):
        spans[row["recording"]].append((float(row["start"]), float(row["end"])))
    paths = json.loads(os.environ["BENCH_PATHS"])
    seconds, cycles = 0.0, 0
    for path in paths:
        decoded = load_audio(path)
        found = [Cycle(Path(path).stem, i, s, e, 0, 0) for i, (s, e) in enumerate(spans[Path(path).stem])]
        for batch in clip_batches(decoded.samples, decoded.sample_rate, found, inputs.prep, BATCH_CYCLES, path):
            started = time.perf_counter()
            features = torch.from_numpy(inputs.features.compute(batch.clips))
            predict_logits(model.model, CycleSet(features, torch.zeros(len(features), dtype=torch.int64)),
                           BATCH_CYCLES)
            seconds += time.perf_counter() - started
            cycles += len(features)
    return seconds, cycles


def _instrument_when_imported(clock: StageClock) -> None:
    """The stages' functions wrapped where `lungkd predict` imports torch and the analysis (its helper process has
    started by then, and works meanwhile): those imports timed as a stage of their own."""
    from lungkd.core import cli

    predict_with = cli._predict_with

    def imported_then_predict(*args, **kwargs):
        started = time.perf_counter()
        import lungkd.core.analysis.combined_export  # noqa: F401  - what _predict_with imports first
        import lungkd.core.analysis.limits  # noqa: F401  - torch with it
        _instrument(clock)
        clock.seconds["importing torch and the analysis"] += time.perf_counter() - started
        return predict_with(*args, **kwargs)
    cli._predict_with = imported_then_predict


def child(model: str, paths: list[str], out: str, workspace: str) -> dict:
    from lungkd.core.cli import main

    ready = time.time()
    clock = StageClock()
    _instrument_when_imported(clock)
    started = time.perf_counter()
    code = main(["predict", model, *paths, "--csv", "--out", out, "--workspace", workspace])
    total, seconds = time.perf_counter() - started, dict(clock.seconds)
    os.environ["BENCH_PATHS"] = json.dumps(paths)
    limit, cycles = _model_limit(model, Path(out))
    return {"ready": ready, "command": total, "code": code, "stages": seconds, "limit": limit, "cycles": cycles}


# ---------------------------------------------------------------- the parent


def _environment(pythonpath: Path | None) -> dict:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath.resolve())
    return env


def stages(env: dict, model: str, paths: list[Path], tmp: Path) -> dict:
    out, workspace = tmp / f"cycles-{time.monotonic_ns()}.csv", tmp / f"ws-{time.monotonic_ns()}"
    began = time.time()
    run = subprocess.run([sys.executable, "-m", "bench.predict_cost", "--child", model, str(out), str(workspace),
                          *map(str, paths)], cwd=ROOT, capture_output=True, text=True, env=env)
    if run.returncode:
        raise SystemExit(f"the measurement failed:\n{run.stderr}")
    result = json.loads(run.stdout.strip().splitlines()[-1])
    if result["code"] not in (0, 1):  # 1: a file failed, said on stderr
        raise SystemExit(f"lungkd predict stopped with code {result['code']}:\n{run.stderr}")
    result["stages"]["start-up and imports"] = result["ready"] - began
    return result


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(child) for child in f.read().split()]
    except OSError:
        return []


def _memory(pid: int) -> tuple[int, int]:
    """(peak resident, current anonymous) kB of a process, from /proc."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value.split()[0] if value.split() else "0"
    return int(fields.get("VmHWM", 0)), int(fields.get("RssAnon", 0))


def from_outside(env: dict, model: str, paths: list[Path], tmp: Path) -> dict:
    """`lungkd predict` as a user runs it: wall time, time to its first line, peak memory."""
    command = [sys.executable, "-m", "lungkd.core.cli", "predict", model, *map(str, paths), "--csv", "--out",
               str(tmp / f"outside-{time.monotonic_ns()}.csv"), "--workspace", str(tmp / f"ws-{time.monotonic_ns()}")]
    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    first: list[float] = []
    peaks = {"rss": 0, "anon": 0, "anon_with_helpers": 0}

    def sample() -> None:
        while process.poll() is None:
            try:
                rss, anon = _memory(process.pid)
            except (OSError, IndexError, ValueError):
                break
            helpers = 0
            for child in _children(process.pid):
                try:
                    helpers += _memory(child)[1]
                except (OSError, IndexError, ValueError):
                    pass  # gone meanwhile
            peaks["rss"], peaks["anon"] = max(peaks["rss"], rss), max(peaks["anon"], anon)
            peaks["anon_with_helpers"] = max(peaks["anon_with_helpers"], anon + helpers)
            time.sleep(0.01)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for _ in process.stderr:
        if not first:
            first.append(time.perf_counter() - began)
    process.wait()
    sampler.join()
    return {"wall": time.perf_counter() - began, "first_output": first[0] if first else float("nan"),
            "peak_rss_mb": peaks["rss"] / 1024, "peak_anon_mb": peaks["anon"] / 1024,
            "peak_anon_with_helpers_mb": peaks["anon_with_helpers"] / 1024, "code": process.returncode}


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


def whole_command(measured: dict) -> float:
    return measured["command"] + measured["stages"]["start-up and imports"]


def report(name: str, rounds: list[dict], outside: dict) -> None:
    ratios = [whole_command(r) / r["limit"] for r in rounds]
    median = sorted(range(len(rounds)), key=ratios.__getitem__)[len(rounds) // 2]
    measured = rounds[median]
    limit, command = measured["limit"], whole_command(measured)
    print(f"\n{name}: {measured['cycles']} cycles; load {os.getloadavg()[0]:.1f}")
    if len(rounds) > 1:
        print(f"whole command / limit in {len(rounds)} rounds: {', '.join(f'{r:.2f}' for r in ratios)}; "
              f"median {ratios[median]:.2f}, whose stages follow")
    print(f"{'stage':<32}{'s':>8}{'/ limit':>9}")
    for stage in STAGES:
        seconds = measured["stages"].get(stage, 0.0)
        print(f"{stage:<32}{seconds:>8.2f}{seconds / limit:>9.2f}")
    other = measured["command"] - sum(v for k, v in measured["stages"].items() if k != "start-up and imports")
    print(f"{'everything else':<32}{other:>8.2f}{other / limit:>9.2f}")
    print(f"{'the whole command':<32}{command:>8.2f}{command / limit:>9.2f}")
    print(f"{'limit: features + model alone':<32}{limit:>8.2f}{1:>9.2f}   "
          f"({1000 * limit / max(measured['cycles'], 1):.1f} ms a cycle)")
    print(f"from outside: {outside['wall']:.1f} s, first output after {outside['first_output']:.2f} s, peak memory "
          f"{outside['peak_rss_mb']:.0f} MB resident, {outside['peak_anon_mb']:.0f} MB anonymous "
          f"({outside['peak_anon_with_helpers_mb']:.0f} MB with its helper's)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEMO)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--data", type=Path, help="recordings (default: the real ICBHI ones)")
    parser.add_argument("--rounds", type=int, default=1, help="measure the command and its limit this many times")
    parser.add_argument("--pythonpath", type=Path, help="measure the LungKD found here instead")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, out, workspace, *paths = args.child
        print(json.dumps(child(model, paths, out, workspace)))
        return 0

    from bench.machine import describe

    env = _environment(args.pythonpath)
    print(describe())
    print(f"LungKD from {args.pythonpath or ROOT}; model {args.model}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sets = []
        if args.minutes:
            path = tmp / f"long-{args.minutes:g}min.wav"
            long_recording(path, args.minutes)
            sets.append((f"one {args.minutes:g}-minute 4 kHz recording, segmented", [path]))
        data = args.data or (REAL_AUDIO if any(REAL_AUDIO.glob("*.wav")) else None)
        if data is not None:
            recordings = sorted(data.glob("*.wav"))
            if recordings:
                sets.append((f"{len(recordings)} recordings of {data}", recordings))
            else:  # `lungkd predict` with no files is a usage error
                print(f"no recordings in {data}: that set is skipped")
        for name, paths in sets:
            rounds = [stages(env, str(args.model), paths, tmp) for _ in range(max(1, args.rounds))]
            report(name, rounds, from_outside(env, str(args.model), paths, tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
