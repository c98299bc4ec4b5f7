"""k teachers trained together as one batched model against the same k trained one after another.

    python -m bench.teachers_together [--sizes tiny,full] [--ks 3,5] [--cycles 64] [--batch-size 16]
                                       [--device cpu|cuda] [--epochs 1]

Both ways run the real trainer (core.training.trainer: `fit` k times, `fit_together` once) on the same
synthetic CNN6 inputs (798 x 128 fbank, SpecAugment on, no evaluation), and the ratio
together / one-after-another of their wall times is printed for each size and k, measured in one run.
On a GPU give the recipe's batch size: `--batch-size 128 --cycles 1024 --device cuda`.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from bench.machine import describe
from lungkd.core.data.dataset import load_dataset
from lungkd.core.data.sources import SyntheticData, ensure_synthetic_dataset
from lungkd.core.features.cycle_sets import CycleSet, build_cycle_sets
from lungkd.core.models.registry import create_model, model_info
from lungkd.core.recipes import RunSettings, TrainConfig
from lungkd.core.training.trainer import Trainer


def _cycles(count: int) -> CycleSet:
    with tempfile.TemporaryDirectory() as tmp:
        folder = ensure_synthetic_dataset(Path(tmp) / "data", SyntheticData(recordings=max(8, count // 5), seed=0))
        train = build_cycle_sets(load_dataset(folder), model_info("cnn6").inputs)["train"]
    repeats = -(-count // len(train))  # enough cycles whatever the split gave
    return CycleSet(train.features.repeat(repeats, 1, 1)[:count], train.labels.repeat(repeats)[:count])


def _models(size: str, seeds: list[int]) -> list[torch.nn.Module]:
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(create_model("cnn6", size=size))
    return models


def _timed(run) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    run()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="tiny,full")
    parser.add_argument("--ks", default="3,5")
    parser.add_argument("--cycles", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    print(describe())
    train = _cycles(args.cycles)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=1e-3)
    settings = RunSettings(selection="last", device=args.device)
    print(f"{args.cycles} cycles, batch {args.batch_size}, {args.epochs} epoch(s), CNN6, SpecAugment on\n")
    print(f"{'size':<6}{'k':>3}{'one after another':>20}{'together':>12}{'together / one by one':>24}")
    for size in args.sizes.split(","):
        warm = _models(size, [0])[0]
        Trainer(config, settings=settings).fit(warm, train)  # warm-up: allocator, kernels, thread pools
        for k in (int(k) for k in args.ks.split(",")):
            seeds = list(range(1, k + 1))
            alone = _timed(lambda: [Trainer(config, seed=s, settings=settings).fit(m, train)
                                    for s, m in zip(seeds, _models(size, seeds))])
            together = _timed(lambda: Trainer(config, settings=settings).fit_together(_models(size, seeds), seeds,
                                                                                       train))
            print(f"{size:<6}{k:>3}{alone:>18.1f} s{together:>10.1f} s{together / alone:>24.2f}")


if __name__ == "__main__":
    main()
