"""First preparation vs a cached one: cycles per second of each pass and their ratio.

    python -m bench.prepare [--features fbank|clap|clips] [--recordings 900] [--workers N] [--workspace DIR]

Datasets: the 10 real ICBHI recordings in ../shared/data/icbhi/audio (skipped when absent) and a
synthetic ICBHI-format dataset (core.synth). The cached pass clears the in-process audio-hash memo
first, so it pays for hashing every file as a new session would.
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

from lungkd.core.features import cache as cache_module
from lungkd.core.features.cache import FeatureCache, prepare_dataset
from lungkd.core.pool import default_workers
from lungkd.core.data.dataset import load_dataset
from lungkd.core.features.spectral import ClapFeatureSettings, FbankSettings
from lungkd.core.features.prepare import PrepSettings

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
    cache_module._file_sha256.cache_clear()  # a new session hashes the audio again
    start = time.perf_counter()
    result = prepare_dataset(recordings, prep, features, store, workers=workers)
    return time.perf_counter() - start, result


def bench(name: str, root: Path, kind: str, workspace: Path, workers: int) -> None:
    prep, features = FEATURES[kind]
    recordings = [r for r in load_dataset(root).recordings if r.usable_audio]
    store = FeatureCache(workspace / f"cache-{name}-{kind}")
    first_s, first = timed_pass(recordings, prep, features, store, workers)
    n, computed, shape, digest = len(first.cycles), first.computed, first.inputs.shape, fingerprint(first.inputs)
    del first  # free its memory for the cached pass, as a new session would start without it
    cached_s, cached = timed_pass(recordings, prep, features, store, workers)
    assert cached.computed == 0 and fingerprint(cached.inputs) == digest
    size = sum(p.stat().st_size for p in store.root.rglob("*.safetensors")) / 2 ** 20
    print(f"{name:>10} {kind:>5}: {len(recordings)} recordings, {n} cycles, inputs {shape[1:]}, "
          f"cache {size:.0f} MiB")
    print(f"{'':>18}first  {first_s:8.2f} s  {n / first_s:10.1f} cycles/s  ({computed} prepared)")
    print(f"{'':>18}cached {cached_s:8.2f} s  {n / cached_s:10.1f} cycles/s  ({cached.cache_hits} read)")
    print(f"{'':>18}ratio  {first_s / cached_s:8.1f}x")


def synthetic(workspace: Path, recordings: int) -> Path | None:
    try:
        from lungkd.core.data.synth import write_synthetic_dataset
    except ImportError as exc:
        print(f"synthetic dataset skipped: {exc}")
        return None
    out = workspace / f"synth-{recordings}"
    start = time.perf_counter()
    write_synthetic_dataset(out, recordings=recordings, seed=0)
    print(f"(wrote {recordings} synthetic recordings in {time.perf_counter() - start:.1f} s; not timed below)")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", choices=sorted(FEATURES), default="fbank")
    parser.add_argument("--recordings", type=int, default=900, help="synthetic recordings (0 to skip)")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--workspace", type=Path, help="keep caches and data here (default: a temporary folder)")
    args = parser.parse_args(argv)
    print(machine())
    print(f"workers {args.workers}, features {args.features}")
    with tempfile.TemporaryDirectory(prefix="lungkd-bench-") as tmp:
        workspace = args.workspace or Path(tmp)
        if any(REAL_AUDIO.glob("*.wav")):
            bench("real", REAL_AUDIO, args.features, workspace, args.workers)
        else:
            print(f"real recordings skipped: none in {REAL_AUDIO}")
        root = synthetic(workspace, args.recordings) if args.recordings else None
        if root is not None:
            bench("synthetic", root, args.features, workspace, args.workers)


if __name__ == "__main__":
    sys.exit(main())
