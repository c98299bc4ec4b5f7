"""What the CPU demo spends outside its training steps, each measured both ways in one run.

    python -m bench.worker_overheads [--recipe resources/recipes/demo-cpu.toml]

On the recipe's generated dataset (240 recordings for the CPU demo):
1. rendering the recordings in this process (workers=1) against the process pool (core/pool.py);
2. what a training worker does before and between its epochs, in a fresh process with glibc's default
   allocator and in one that keeps freed memory (core.kd.worker.keep_freed_memory, as every worker now does):
   loading the prepared inputs from the warm cache (core.features.cycle_sets.build_cycle_sets), then
   predicting the test split with a tiny CNN6 at batch 64 (as each epoch's evaluation does), five times.
Prints seconds and the ratio new / old of each.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path

from bench.machine import describe

ROOT = Path(__file__).resolve().parents[1]
PREDICTIONS = 5


def probe(workspace: Path, recipe_path: Path, keep: bool) -> dict:
    """One worker's load and predictions (run in a fresh process)."""
    import torch

    from lungkd.core.data.sources import resolve_dataset
    from lungkd.core.features.cache import FeatureCache
    from lungkd.core.features.cycle_sets import build_cycle_sets
    from lungkd.core.kd.worker import keep_freed_memory
    from lungkd.core.models.registry import create_model, model_info
    from lungkd.core.recipes import load_experiment
    from lungkd.core.models.inference import predict_logits
    from lungkd.core.workspace.layout import cache_folder

    kept = keep_freed_memory() if keep else False
    recipe = load_experiment(recipe_path)
    index = resolve_dataset(recipe.data, workspace, selection=recipe.selection)
    start = time.perf_counter()
    sets = build_cycle_sets(index, model_info("cnn6").inputs, cache=FeatureCache(cache_folder(workspace)))
    load_s = time.perf_counter() - start
    torch.manual_seed(0)
    model = create_model("cnn6", size="tiny")
    start = time.perf_counter()
    for _ in range(PREDICTIONS):
        predict_logits(model, sets["test"], batch_size=64)
    return {"kept": kept, "load_s": load_s, "predict_s": (time.perf_counter() - start) / PREDICTIONS,
            "cycles": {split: len(s) for split, s in sets.items()}}


def render_seconds(recording_count: int, seed: int, workers: int | None) -> float:
    from lungkd.core.data.synth import write_synthetic_dataset

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_synthetic_dataset(Path(tmp) / "data", recording_count, seed, workers=workers)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", type=Path, default=Path(str(files("lungkd.resources") / "recipes" / "demo-cpu.toml")))
    parser.add_argument("--probe", choices=("default", "keep"), help=argparse.SUPPRESS)
    parser.add_argument("--workspace", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe(args.workspace, args.recipe, args.probe == "keep")))
        return

    from lungkd.core.data.sources import resolve_dataset
    from lungkd.core.features.cache import FeatureCache
    from lungkd.core.features.cycle_sets import build_cycle_sets
    from lungkd.core.models.registry import model_info
    from lungkd.core.pool import default_workers
    from lungkd.core.recipes import load_experiment
    from lungkd.core.workspace.layout import cache_folder

    recipe = load_experiment(args.recipe)
    synthetic = recipe.data.synthetic
    print(describe())
    print(f"recipe {args.recipe}: {synthetic.recordings} generated recordings\n")
    one = render_seconds(synthetic.recordings, synthetic.seed, workers=1)
    pool = render_seconds(synthetic.recordings, synthetic.seed, workers=None)
    print(f"rendering the recordings: one process {one:.1f} s, default workers ({default_workers()}) {pool:.1f} s "
          f"(ratio {pool / one:.2f})")

    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp) / "ws"
        index = resolve_dataset(recipe.data, workspace, selection=recipe.selection)
        build_cycle_sets(index, model_info("cnn6").inputs, cache=FeatureCache(cache_folder(workspace)))  # warm
        runs = {}
        for mode in ("default", "keep"):
            out = subprocess.run([sys.executable, "-m", "bench.worker_overheads", "--recipe", str(args.recipe),
                                  "--probe", mode, "--workspace", str(workspace)],
                                 cwd=ROOT, check=True, capture_output=True, text=True)
            runs[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    old, new = runs["default"], runs["keep"]
    print(f"a worker's cycles: {old['cycles']}; freed memory kept: {new['kept']}")
    print(f"{'':<42}{'glibc default':>14}{'kept':>8}{'ratio':>8}")
    for key, label in (("load_s", "load the prepared inputs (warm cache), s"),
                       ("predict_s", "predict the test split at batch 64, s")):
        print(f"{label:<42}{old[key]:>14.2f}{new[key]:>8.2f}{new[key] / old[key]:>8.2f}")


if __name__ == "__main__":
    main()
