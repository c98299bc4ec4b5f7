"""Preparation with the default workers against one worker, and a cached pass against the first.

    python -m bench.prepare [--features fbank|clap|clips] [--recordings 900] [--workers N] [--workspace DIR]

Datasets: the 10 real ICBHI recordings in ../shared/data/icbhi/audio (skipped when absent) and a
synthetic ICBHI-format dataset (core.synth). Each is prepared from nothing twice, by this process alone
(workers=1) and with the default workers (core.pool: helpers join only when the work pays for them), then
read back from the cache; the cached pass clears the in-process audio-hash memo first, so it pays for hashing
every file as a new session would. Both ratios come from the same run.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from lungkd.core import pool, storage
from lungkd.core.features.cache import FeatureCache, prepare_dataset
from lungkd.core.pool import default_workers
from lungkd.core.data.dataset import load_dataset
from lungkd.core.features.inputs import ClapFeatureSettings, FbankSettings, PrepSettings

REAL_AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "icbhi" / "audio"
FEATURES = {
    "fbank": (PrepSettings(16000), FbankSettings()),
    "clap": (PrepSettings(48000), ClapFeatureSettings()),
    "clips": (PrepSettings(16000), None),
}


def machine() -> str:
    import torch

    return (f"{platform.platform()} | {platform.processor() or platform.machine()} | "
            f"{os.cpu_count()} CPUs | python {platform.python_version()} | torch {torch.__version__}")


def fingerprint(array) -> str:
    return hashlib.sha256(array.tobytes()).hexdigest()


def timed_pass(recordings, prep, features, store, workers) -> tuple[float, object]:
    storage._file_sha256.cache_clear()  # a new session hashes the audio again
    start = time.perf_counter()
    result = prepare_dataset(recordings, prep, features, store, workers=workers)
    return time.perf_counter() - start, result


def bench(name: str, root: Path, kind: str, workspace: Path, workers: int | None) -> None:
    prep, features = FEATURES[kind]
    recordings = [r for r in load_dataset(root).recordings if r.usable_audio]
    prepare_dataset(recordings[:1], prep, features, None, workers=1)  # warm: the first pass pays no import
    alone_s, alone = timed_pass(recordings, prep, features, FeatureCache(workspace / f"alone-{name}-{kind}"), 1)
    digest = fingerprint(alone.inputs)
    del alone  # free its memory, as a new session would start without it
    store = FeatureCache(workspace / f"cache-{name}-{kind}")
    pool._measured_start_s = None  # set when a helper delivers its first result
    first_s, first = timed_pass(recordings, prep, features, store, workers)
    helpers = "none started" if pool._measured_start_s is None else \
        f"started, the first ready {pool._measured_start_s:.1f} s after its start"
    n, computed, shape = len(first.cycles), first.computed, first.inputs.shape
    assert fingerprint(first.inputs) == digest, "the workers prepared other inputs than one process alone"
    del first
    cached_s, cached = timed_pass(recordings, prep, features, store, workers)
    assert cached.computed == 0 and fingerprint(cached.inputs) == digest
    size = sum(p.stat().st_size for p in store.root.rglob("*.safetensors")) / 2 ** 20
    print(f"{name:>10} {kind:>5}: {len(recordings)} recordings, {n} cycles, inputs {shape[1:]}, "
          f"cache {size:.0f} MiB, load {os.getloadavg()[0]:.1f}")
    print(f"{'':>18}one worker {alone_s:8.2f} s  {n / alone_s:10.1f} cycles/s  ({computed} prepared)")
    print(f"{'':>18}default    {first_s:8.2f} s  {n / first_s:10.1f} cycles/s  "
          f"(ratio to one worker {first_s / alone_s:.2f}; helpers {helpers})")
    print(f"{'':>18}cached     {cached_s:8.2f} s  {n / cached_s:10.1f} cycles/s  ({cached.cache_hits} read; "
          f"first / cached {first_s / cached_s:.1f}x)", flush=True)


def synthetic(workspace: Path, recordings: int) -> Path:
    """The synthetic dataset in the workspace, generated once (a --workspace kept between runs reuses it)."""
    from lungkd.core.data.sources import SyntheticData, ensure_synthetic_dataset

    out = workspace / f"synth-{recordings}"
    start = time.perf_counter()
    ensure_synthetic_dataset(out, SyntheticData(recordings=recordings, seed=0))
    print(f"(the {recordings} synthetic recordings took {time.perf_counter() - start:.1f} s to write or find; not "
          "timed below)")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", choices=sorted(FEATURES), default="fbank")
    parser.add_argument("--recordings", type=int, default=900, help="synthetic recordings (0 to skip)")
    parser.add_argument("--workers", type=int, help=f"the default run's workers (default: core.pool's, "
                        f"{default_workers()} here)")
    parser.add_argument("--workspace", type=Path, help="keep caches and data here (default: a temporary folder)")
    args = parser.parse_args(argv)
    print(machine())
    print(f"workers {args.workers or f'default ({default_workers()})'}, features {args.features}, "
          f"load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="lungkd-bench-") as tmp:
        workspace = args.workspace or Path(tmp)
        if any(REAL_AUDIO.glob("*.wav")):
            bench("real", REAL_AUDIO, args.features, workspace, args.workers)
        else:
            print(f"real recordings skipped: none in {REAL_AUDIO}")
        if args.recordings:
            bench("synthetic", synthetic(workspace, args.recordings), args.features, workspace, args.workers)


if __name__ == "__main__":
    sys.exit(main())
