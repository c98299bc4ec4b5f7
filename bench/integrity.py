"""What the hardening of issue 10 costs, measured in one run: the checksum checks on every cache read and
model load, and how fast and small the refusal of absurd inputs is.

    python -m bench.integrity [--recordings 60]

1. Cache entries: reading an entry's array against checking its CRC-32 (what FeatureCache.get does) and
   what a sha256 would cost instead, over the entries of a synthetic dataset (fbank, as CNN6 and BTS use).
2. Models: the sha256 of a saved model's files against loading it (create_model from the folder).
3. Refusals: a 200,000-line annotation file and a 64 KB recipe of nested dotted keys, time and peak memory.
"""
from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
import tracemalloc
import zlib
from pathlib import Path

from bench.machine import describe
from lungkd.core.data.annotations import read_annotation_file
from lungkd.core.data.dataset import load_dataset
from lungkd.core.errors import LungKDError
from lungkd.core.features.cache import FeatureCache, prepare_dataset
from lungkd.core.features.inputs import FbankSettings, PrepSettings
from lungkd.core.recipes import read_toml


def best_of(runs: int, work) -> float:
    """The fastest of a few runs, in seconds: the machine is shared, the fastest is the least disturbed."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def cache_entries(workspace: Path, recordings: int) -> None:
    from lungkd.core.data.synth import write_synthetic_dataset

    write_synthetic_dataset(workspace / "data", recordings=recordings, seed=0)
    recs = [r for r in load_dataset(workspace / "data").recordings if r.usable_audio and r.cycles]
    store = FeatureCache(workspace / "cache")
    prepare_dataset(recs, PrepSettings(16000), FbankSettings(), store, workers=2)
    paths = sorted(store.root.rglob("*.safetensors"))
    blobs = [p.read_bytes() for p in paths]  # in memory: what is compared is the work on the bytes
    size = sum(map(len, blobs))
    copy = best_of(3, lambda: [bytearray(b) for b in blobs])
    crc = best_of(3, lambda: [zlib.crc32(b) for b in blobs])
    sha = best_of(3, lambda: [hashlib.sha256(b).digest() for b in blobs])
    print(f"cache: {len(paths)} entries, {size / 2 ** 20:.0f} MiB of fbank inputs")
    print(f"  copy into the dataset array {size / copy / 1e9:5.2f} GB/s")
    print(f"  CRC-32 check (kept)         {size / crc / 1e9:5.2f} GB/s  = {crc / copy:4.2f}x the copy")
    print(f"  sha256 (not chosen)         {size / sha / 1e9:5.2f} GB/s  = {sha / copy:4.2f}x the copy")
    cycles = sum(len(r.cycles) for r in recs)
    cached = best_of(3, lambda: prepare_dataset(recs, PrepSettings(16000), FbankSettings(), store, workers=2))
    print(f"  a whole cached pass with the checks: {cycles / cached:.0f} cycles/s")


def models(workspace: Path) -> None:
    from transformers.utils import logging

    from lungkd.core import storage
    from lungkd.core.models.registry import check_saved_files, create_model, save_model

    logging.disable_progress_bar()

    def fresh(work):  # as a new session: the in-process memo of file hashes emptied first
        return lambda: (storage._file_sha256.cache_clear(), work())

    for arch, size in (("cnn6", "full"), ("resnet18", "full")):
        folder = workspace / f"{arch}-model"
        save_model(create_model(arch, size=size), folder)
        megabytes = sum(p.stat().st_size for p in folder.iterdir()) / 2 ** 20
        check = best_of(3, fresh(lambda: check_saved_files(folder)))
        load = best_of(3, fresh(lambda: create_model(arch, pretrained=folder)))
        print(f"model {arch} ({megabytes:.0f} MiB): sha256 of its files {check * 1000:.0f} ms, the whole load "
              f"{load * 1000:.0f} ms (the check is {check / load:.0%} of it)")


def refused(kind: str, path: Path, reader) -> None:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        reader(path)
        outcome = "accepted"
    except LungKDError:
        outcome = "refused"
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"{kind}: {path.stat().st_size / 1e6:.2f} MB, {outcome} in {seconds * 1000:.0f} ms, "
          f"peak {peak / 2 ** 20:.1f} MiB of Python memory")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=60, help="synthetic recordings for the cache part")
    args = parser.parse_args(argv)
    print(describe())
    with tempfile.TemporaryDirectory(prefix="lungkd-bench-") as tmp:
        workspace = Path(tmp)
        cache_entries(workspace, args.recordings)
        models(workspace)
        annotation = workspace / "101_1b1_Al_sc_Meditron.txt"
        annotation.write_text("0.1\t0.2\t0\t0\n" * 200_000)
        refused("annotation of 200,000 lines", annotation, read_annotation_file)
        recipe = workspace / "deep.toml"
        recipe.write_text(".".join(["a"] * 32_000) + " = 1\n")
        refused("recipe of one 32,000-part key", recipe, read_toml)


if __name__ == "__main__":
    main()
