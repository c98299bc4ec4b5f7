"""One epoch of full-size cnn6 and bts on an ICBHI-sized synthetic dataset (920 recordings by default), with
the recipes' batch sizes and mixed precision, through the real trainer.

Prints per architecture: feature preparation time, training cycles/s, peak GPU memory and the share of
training time spent gathering and moving batches (waiting for data). Part of gpu_check.sh.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from bench.machine import describe
from lungkd.core.data.dataset import load_dataset
from lungkd.core.data.sources import SyntheticData, ensure_synthetic_dataset
from lungkd.core.features.cache import FeatureCache
from lungkd.core.features.cycle_sets import build_cycle_sets
from lungkd.core.models.registry import create_model, model_info
from lungkd.core.recipes import RunSettings, TrainConfig
from lungkd.core.training.trainer import Trainer

ARCHS = ("cnn6", "bts")  # the paper recipes (docs/method.md), one epoch each


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recordings", type=int, default=920)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    print(describe())
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        index = load_dataset(ensure_synthetic_dataset(Path(tmp) / "data", SyntheticData(args.recordings, 0)))
        cache = FeatureCache(Path(tmp) / "cache")
        for arch in ARCHS:
            info = model_info(arch)
            config = TrainConfig(**{**info.paper_train, "epochs": 1})
            start = time.perf_counter()
            sets = build_cycle_sets(index, info.inputs, cache=cache)
            prepare_s = time.perf_counter() - start
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            result = Trainer(config, settings=RunSettings(selection="last")).fit(create_model(arch), sets["train"])
            epoch = result.history[0]
            row = {"arch": arch, "device": result.device, "train_cycles": len(sets["train"]),
                   "prepare_s": round(prepare_s, 1), "cycles_per_s": round(len(sets["train"]) / epoch.seconds, 1),
                   "data_wait_share": round(epoch.data_seconds / epoch.seconds, 3),
                   "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
                   if torch.cuda.is_available() else None}
            results[arch] = row
            print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
