"""Does the time estimate hold? core.kd.estimate's estimate against the measured run, each in a fresh workspace
and through the process executor, as `lungkd run` and the Studio train:

- the CPU demo: resources/recipes/demo-cpu.toml, what `lungkd demo` and the wizard's CPU demo run;
- a paper-sized recipe's first epoch: one full-size CNN6 on 920 generated recordings (as many as ICBHI has),
  official split, nothing held out (the papers' data), the CNN6 student recipe's training (SpecAugment,
  weight averaging 0.5, lr 1e-3) for one epoch, at --batch-size (the recipe's 128 needs more memory than the
  shared 24 GB machine has to spare; the estimate is timed at the same batch size).

    python -m bench.estimate_check [--only demo|epoch] [--recordings 920] [--batch-size 32] [--threads N]

--threads sets torch's threads here and so in every worker (the process executor passes its own on): on a
machine other jobs keep busy, two threads that wait for each other at every operation train several times
slower than one, and the estimate and the run must be timed alike.

Prints the estimate and how long it took to work out (it generates the data and prepares one recording, which
the run then finds done), the measured stages, and the ratio measured / estimated for the whole run and for
the training steps (the epochs' own timing, from the run's training state).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from importlib.resources import files
from pathlib import Path

import torch

from bench.demo import StageClock, cpu_seconds
from bench.machine import describe
from lungkd.core.kd.estimate import estimate_experiment
from lungkd.core.kd.executors import create_executor
from lungkd.core.kd.experiment import Experiment
from lungkd.core.recipes import ExperimentRecipe, load_experiment, parse_experiment
from lungkd.core.workspace.layout import STATE_FILE


def first_epoch_recipe(recordings: int, batch_size: int) -> ExperimentRecipe:
    return parse_experiment({
        "name": "paper-cnn6-first-epoch", "selection": "best_test", "device": "auto",
        "data": {"synthetic": {"recordings": recordings, "seed": 0}, "split": "official",
                 "calibration_fraction": 0.0},
        "teachers": {"arch": "cnn6", "size": "full", "k": 1,
                     "train": {"epochs": 1, "batch_size": batch_size, "lr": 1e-3, "weight_averaging": 0.5,
                               "specaugment": True}}})


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def training_step_seconds(workspace: Path) -> float:
    """The training steps of every epoch of every run, as the trainer timed them (its resumable state)."""
    total = 0.0
    for state in workspace.rglob(STATE_FILE):
        members = json.loads(torch.load(state, map_location="cpu", weights_only=True)["members"])
        total += sum(record["seconds"] for member in members for record in member["history"])
    return total


def check(recipe: ExperimentRecipe, workspace: Path) -> None:
    """Prints the estimate, the run's stages and the ratios."""
    print(f"\n== {recipe.name}: load {load()}")
    start = time.perf_counter()
    estimate = estimate_experiment(recipe, workspace)
    print(f"estimate, worked out in {time.perf_counter() - start:.1f} s:\n  {estimate.sentence()}")
    for part in estimate.parts:
        print(f"  {part.what:<24}{part.seconds:>9.1f} s")
    clock = StageClock()
    start_wall, start_cpu = time.perf_counter(), cpu_seconds()
    executor = create_executor("process")
    try:
        Experiment(recipe, workspace, on_event=clock, executor=executor).run()
    finally:
        executor.close()
    wall, cpu = time.perf_counter() - start_wall, cpu_seconds() - start_cpu
    print(f"measured (load {load()} after):")
    for stage, stage_wall, stage_cpu in clock.table(start_wall + wall, start_cpu + cpu):
        print(f"  {stage:<24}{stage_wall:>9.1f} s wall {stage_cpu:>9.1f} s CPU")
    steps = training_step_seconds(workspace)
    estimated_steps = sum(p.seconds for p in estimate.parts if p.what.endswith("training"))
    print(f"whole run: measured {wall:.1f} s, estimated {estimate.seconds:.1f} s: "
          f"measured / estimated {wall / estimate.seconds:.2f}")
    print(f"training steps: measured {steps:.1f} s, estimated {estimated_steps:.1f} s: "
          f"measured / estimated {steps / estimated_steps:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("demo", "epoch"))
    parser.add_argument("--recordings", type=int, default=920, help="of the paper-sized recipe (default 920)")
    parser.add_argument("--batch-size", type=int, default=32, help="of the paper-sized recipe (default 32)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(describe())
    checks = {"demo": lambda: load_experiment(Path(str(files("lungkd.resources") / "recipes" / "demo-cpu.toml"))),
              "epoch": lambda: first_epoch_recipe(args.recordings, args.batch_size)}
    for name, recipe in checks.items():
        if args.only in (None, name):
            with tempfile.TemporaryDirectory() as tmp:
                check(recipe(), Path(tmp) / "ws")


if __name__ == "__main__":
    main()
